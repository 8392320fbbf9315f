# The CAM baseline twin of real_voc20_bas_gpu.py: the same backbone, data and schedule, no fusion.
_base_ = ['./real_voc20_bas_gpu.py']
localizer = dict(type='cam')
export_maps = dict(fuse_cam=None)
