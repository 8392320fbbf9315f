"""The final segmenter: mmsegmentation's DeepLab trained on the pseudo-mask data set.

`mmcv_compat` lets mmseg import on mmcv-lite; `mmseg_config` writes the mmseg config
a stage (or mmseg's own tools) trains from; `weights` turns torchvision ImageNet
weights into mmseg's ResNet; `checkpoints` allow-lists what mmengine's checkpoints
hold; `inference` predicts with multi-scale, flip and an optional dense CRF.

Code that reaches mmseg calls `mmcv_compat.install()` first (the mmcv-lite fallback; a
no-op under full mmcv). Importing this package does not: mmcv imports torch, and the CLI
reads the segmenter's settings (`mmseg_config`) without it.
"""
