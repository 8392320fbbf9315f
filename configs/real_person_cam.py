# The one-class label space {person} on real photos: person-free images stay as negatives
# (background-only), which every localizer trains on (pipeline/models/base.py).
_base_ = ['./real_voc20_cam.py']
dataset = dict(classes=('person',), negatives='keep')
