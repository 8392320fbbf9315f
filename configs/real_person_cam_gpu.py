# The CAM baseline twin of real_person_bas_gpu.py.
_base_ = ['./real_voc20_cam_gpu.py']
dataset = dict(classes=('person',), negatives='keep')
