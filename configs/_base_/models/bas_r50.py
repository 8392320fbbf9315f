# The BAS localizer (docs/method.md, section 1): ResNet-50, output stride 16, ImageNet init.
localizer = dict(
    method='bas',  # 'bas', or 'cam' for the CAM baseline on the same backbone
    backbone=dict(
        depth=50,  # 18, 34, 50 or 101
        output_stride=16,  # 16 (paper) or 8
        weights='IMAGENET1K_V1',  # torchvision weights name, a local .pth, or None (random init)
    ),
    head_init='xavier',  # xavier_uniform, as the reference; or 'default' (PyTorch's)
    bas_loss_weights=dict(mcls=1.0, frg=0.2, bas=1.0, area=1.2),
    # BatchNorm statistics in the erased pass: 'batch' as in the paper's code, or 'running'
    # (the erased batch's own statistics undo a uniform erasure; see pipeline/models/bas.py).
    bas_erased_bn='batch',
)
