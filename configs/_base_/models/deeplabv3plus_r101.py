# The final segmenter (issue: mmseg has no DeepLab-v2; DeepLabV3+ R101 is its closest,
# stronger choice, docs/method.md section 2), ImageNet-initialised from torchvision weights.
segmenter = dict(
    head='deeplabv3plus',  # or 'deeplabv3'
    depth=101,  # 18, 34, 50 or 101
    output_stride=8,  # 8 (mmseg's d8) or 16
    weights='IMAGENET1K_V1',  # torchvision weights name, a local .pth, or None (random init)
    allow_random_init=False,  # weights=None is refused unless this is True
    aspp_dilations=(1, 12, 24, 36),
    head_channels=None,  # None: 512 for R50/101, 128 for R18/34 (mmseg's choices)
    auxiliary_head=True,  # FCN head on layer3, loss weight 0.4
    dropout=0.1,
)
