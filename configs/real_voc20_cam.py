# The CAM baseline twin of real_voc20_bas.py: the same backbone, data and schedule.
_base_ = ['./real_voc20_bas.py']
localizer = dict(type='cam')
