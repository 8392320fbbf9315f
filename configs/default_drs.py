# DRS (Kim, Han and Kim, AAAI 2021; qjadud1994/DRS), the second seed method, on the
# default synthetic run on CPU: the default's data, schedule, export, CRF and segmenter,
# with DRS's suppressors after every activation of the default's ImageNet-initialised
# EfficientNet-Lite0 (pipeline/models/drs.py). From random init (the reference's VGG-16,
# whose ImageNet weights cannot be downloaded here) DRS learned nothing on this set.
# The paper takes its background from a saliency model, which this pipeline does not
# have: the background comes from evaluate_maps' threshold and the CRF, as for BAS.
# The reference's VGG-16 'D1' path: localizer.backbone=dict(type='vgg', weights='IMAGENET1K_V1').
# Compare BAS, CAM and DRS in one report:
#   python run_pipeline.py --config configs/default.py --stage report \
#       --cfg-options "report.compare_runs=['outputs/default_cam','outputs/default_drs']"
_base_ = ['./default.py']

localizer = dict(
    type='drs',
    drs=dict(
        delta=None,  # None: delta learned per channel (the paper's "learnable DRS"); a number fixes it (0.55)
        loss_weights=dict(soft_margin=1.0),
    ),
)
