# DRS on real photos: suppressors after the activations of the ImageNet-initialised
# EfficientNet-Lite0 (pipeline/models/drs.py), otherwise as real_voc20_bas.py.
_base_ = ['./real_voc20_bas.py']
localizer = dict(type='drs')
