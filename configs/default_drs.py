# DRS (Kim, Han and Kim, AAAI 2021; qjadud1994/DRS), the second seed method, on the
# default synthetic run on CPU: the default's data, export, CRF and segmenter, with the
# DRS localizer (pipeline/models/drs.py: the reference's 'D1' VGG-16 at output stride 8,
# a suppressor after every ReLU) from random init (no download here).
# The paper takes its background from a saliency model, which this pipeline does not
# have: the background comes from evaluate_maps' threshold and the CRF, as for BAS.
# Compare BAS, CAM and DRS in one report:
#   python run_pipeline.py --config configs/default.py --stage report \
#       --cfg-options "report.compare_runs=['outputs/default_cam','outputs/default_drs']"
_base_ = ['./default.py']

localizer = dict(
    _delete_=True,  # BAS's section of default.py does not apply
    type='drs',
    backbone=dict(weights=None),  # torchvision VGG-16 weights ('IMAGENET1K_V1'), a local .pth, or None
    drs=dict(
        delta=None,  # None: delta learned per channel (the paper's "learnable DRS"); a number fixes it (0.55)
        loss_weights=dict(soft_margin=1.0),
    ),
)
# The default's schedule, resolution and learning rate. The reference's lr (0.001, extra
# layers 10x, weight decay 5e-4) assumes ImageNet weights: from random init the loss
# stayed at 0.596 from the 4th epoch on (measured on this set), so, as default.py does for
# BAS, every layer learns from scratch at 0.01.
train_localizer = dict(lr=0.01, head_lr_mult=1.0, weight_decay=5e-4, classifier_warmup_epochs=0)
