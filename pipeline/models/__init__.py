"""Localization networks: the BAS localizer and the CAM baseline it is measured against."""

from __future__ import annotations

import dataclasses

from pipeline.config import section_to_dataclass
from pipeline.errors import ConfigError
from pipeline.models.backbone import ResNetBackbone, build_backbone
from pipeline.models.bas import BASLocalizer, BASLossWeights
from pipeline.models.cam import CAMClassifier

__all__ = ["ResNetBackbone", "build_backbone", "BASLocalizer", "CAMClassifier", "build_localizer", "load_trained_localizer", "loss_weights"]

METHODS = {"bas": BASLocalizer, "cam": CAMClassifier}


def build_localizer(method: str, num_classes: int, backbone: dict, **method_options):
    """`method_options` go to the method's model (head_init; BAS: erased_bn)."""
    if method not in METHODS:
        raise ConfigError(f"localizer.method = {method!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[method](build_backbone(**backbone), num_classes, **method_options)


def load_trained_localizer(path, device="cpu"):
    """A localizer saved by the train_localizer stage, in eval mode."""
    import torch

    saved = torch.load(path, map_location="cpu", weights_only=True)
    backbone = dict(saved["backbone"], weights=None)  # the trained weights replace any init
    model = METHODS[saved["method"]](build_backbone(**backbone), saved["num_classes"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), saved["method"]


def loss_weights(localizer_cfg: dict) -> dict[str, float]:
    """Weights of the loss terms the chosen method's forward returns."""
    if localizer_cfg["method"] == "bas":
        weights = section_to_dataclass(BASLossWeights, localizer_cfg["bas_loss_weights"], "localizer.bas_loss_weights")
        return dataclasses.asdict(weights)
    return {"soft_margin": 1.0}
