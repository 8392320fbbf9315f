"""Segmenter predictions as WSSS papers make them: multi-scale + flip, optional dense CRF.

Scales multiply mmseg's test resize (the training base scale, keep_ratio), as in
mmseg's TTA; class probabilities are averaged at the image's own size. The test-time
CRF and the PNGs are `pipeline.predictions`' (worker processes without torch).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F



def rescale_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv's keep-ratio rescale: the largest size that fits (long, short) = scale."""
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def model_input(model: torch.nn.Module, rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in 0..255 as the segmentor was trained on it: the channel order,
    mean and std of its own data preprocessor (mmseg's SegDataPreProcessor), which vary
    with the backbone's weights (ImageNet's for torchvision, 0.5 / 0.5 for timm's Lite0)."""
    preprocessor = model.data_preprocessor
    x = rgb if preprocessor.channel_conversion else rgb.flip(1)  # no conversion: it was fed the loader's BGR
    if preprocessor._enable_normalize:
        x = (x - preprocessor.mean.to(x.device)) / preprocessor.std.to(x.device)
    return x


@dataclasses.dataclass
class Predictor:
    model: torch.nn.Module  # an mmseg segmentor (EncoderDecoder), in eval mode
    base_scale: tuple[int, int]
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype | None = None  # autocast dtype (CUDA: bf16); None: fp32

    @torch.no_grad()
    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """(K, H, W) float32 class probabilities for an (H, W, 3) uint8 RGB image."""
        h, w = image.shape[:2]
        x = model_input(self.model, torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float())
        base_h, base_w = rescale_size(h, w, self.base_scale)
        total = 0
        for s in self.scales:
            size = (max(int(base_h * s + 0.5), 1), max(int(base_w * s + 0.5), 1))
            xs = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            if self.flip:
                xs = torch.cat([xs, xs.flip(3)])
            meta = dict(img_shape=size, ori_shape=size, pad_shape=size)
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
                logits = self.model.inference(xs, [meta] * len(xs)).float()
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            probs = logits.softmax(1)
            total = total + probs[0] + (probs[1].flip(2) if self.flip else 0)
        return (total / (len(self.scales) * (2 if self.flip else 1))).float().cpu().numpy()
