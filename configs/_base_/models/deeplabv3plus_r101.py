# The final segmenter (issue: mmseg has no DeepLab-v2; DeepLabV3+ R101 is its closest,
# stronger choice, docs/method.md section 2), ImageNet-initialised from torchvision weights:
# DeepLabV3+ R101-d8, ASPP rates (1, 12, 24, 36), auxiliary FCN head are SegmenterModel's
# defaults (pipeline/segmenter/mmseg_config.py); a config overrides them here.
segmenter = dict()
