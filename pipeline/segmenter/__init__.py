"""The final segmenter: mmsegmentation's DeepLab trained on the pseudo-mask data set.

`mmcv_compat` lets mmseg import on mmcv-lite; `mmseg_config` writes the mmseg config
a stage (or mmseg's own tools) trains from; `weights` turns torchvision ImageNet
weights into mmseg's ResNet; `checkpoints` allow-lists what mmengine's checkpoints
hold; `inference` predicts with multi-scale, flip and an optional dense CRF.

Importing this package installs the mmcv-lite fallback (a no-op under full mmcv), so
its modules can import mmseg.
"""

from pipeline.segmenter import mmcv_compat

mmcv_compat.install()
