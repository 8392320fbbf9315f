# The default run: the whole pipeline on the synthetic data set, on CPU, in minutes.
# It inherits the paper's settings and shrinks what a 2-core CPU cannot afford.
_base_ = [
    './_base_/runtime.py',
    './_base_/datasets/synthetic.py',
    './_base_/models/bas_r50.py',
    './_base_/schedules/localizer_paper.py',
    './_base_/pseudo_masks.py',
]

localizer = dict(
    backbone=dict(depth=18, weights=None),  # no download here: random init
    # From random init, the erased batch's own BatchNorm statistics undo a uniform erasure
    # and L_bas gives no signal while L_area collapses the maps: use the running statistics.
    bas_erased_bn='running',
)
train_localizer = dict(
    epochs=12,
    classifier_warmup_epochs=4,  # random init: let the classifier classify before BAS starts
    lr=0.01,  # random init: every layer learns from scratch, so one learning rate for all
    head_lr_mult=1.0,
    resize_long=(72, 96),  # at most the crop: a crop never cuts the decisive part away
    crop=96,
    amp=None,
    num_workers=1,
)
export_maps = dict(scales=(0.5, 0.75))  # the training scale is ~0.6 of the images'
