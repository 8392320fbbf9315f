"""The interface every localizer backbone shares (ResNet in backbone.py, timm in
timm_backbone.py): two feature levels, the mid one that BAS's extractor reads and the
deep one the classifier reads."""

from __future__ import annotations

import torch
from torch import nn


class TwoLevelBackbone(nn.Module):
    """What every localizer backbone shares: (mid features, deep features) from `forward`.
    A subclass sets `feature_info` and `deep` and defines `forward_mid(x)`."""

    feature_info: list[dict]
    deep: nn.Module

    def channels(self, level: str) -> int:
        return next(f["num_chs"] for f in self.feature_info if f["level"] == level)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mid = self.forward_mid(x)
        return mid, self.deep(mid)
