# The BAS localizer (docs/method.md, section 1): ResNet-50, output stride 16, ImageNet init.
localizer = dict(
    type='bas',  # a plug-in of pipeline/models: 'bas', 'cam' (the CAM baseline, same backbone), 'drs'
    backbone=dict(
        depth=50,  # 18, 34, 50 or 101
        output_stride=16,  # 16 (paper) or 8
        weights='IMAGENET1K_V1',  # torchvision weights name, a local .pth, or None (random init)
    ),
    head_init='xavier',  # xavier_uniform, as the reference; or 'default' (PyTorch's)
    # Each method's own options, in a section named after it (read when it is the type).
    bas=dict(
        loss_weights=dict(mcls=1.0, frg=0.2, bas=1.0, area=1.2),
        # BatchNorm statistics in the erased pass: 'batch' as in the paper's code, or 'running'
        # (the erased batch's own statistics undo a uniform erasure; see pipeline/models/bas.py).
        erased_bn='batch',
    ),
    cam=dict(loss_weights=dict(soft_margin=1.0)),
)
