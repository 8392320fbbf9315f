"""Localization networks, as plug-ins: BAS, the CAM baseline, DRS.

A localizer is one model class, registered in `METHODS` under its config name
(`localizer.type`), with:

- `Options`: a dataclass of its own options (at least `loss_weights`), read from the
  config section `localizer.<type>` (absent: the defaults);
- `build(num_classes, backbone, head_init, options)`: the model from the config;
- `heads()`: the modules trained with the head learning rate;
- `forward(images)` -> class maps (B, C, h, w), and `forward(images, labels)` -> a dict
  of loss terms, weighted by `options.loss_weights` (other terms are logged only).

Adding a method is its model file, one line in `METHODS`, and a config.
"""

from __future__ import annotations

import dataclasses

import torch

from pipeline.config import section_to_dataclass
from pipeline.errors import ConfigError
from pipeline.models.backbone import ResNetBackbone, build_backbone
from pipeline.models.bas import BASLocalizer
from pipeline.models.cam import CAMClassifier
from pipeline.models.drs import DRSClassifier

__all__ = ["ResNetBackbone", "build_backbone", "METHODS", "build_localizer", "load_trained_localizer"]

METHODS = {"bas": BASLocalizer, "cam": CAMClassifier, "drs": DRSClassifier}


def build_localizer(localizer: dict, num_classes: int) -> tuple[torch.nn.Module, dict[str, float]]:
    """(model, loss weights) from a `localizer` config section: type, backbone, head_init
    and the method's own section."""
    kind, options = _method_options(localizer)
    model = METHODS[kind].build(num_classes, dict(localizer["backbone"]), localizer.get("head_init", "default"),
                                options)
    return model, {k: float(v) for k, v in options.loss_weights.items()}


def load_trained_localizer(path, device="cpu"):
    """(model in eval mode, its type) from a `model.pth` a localizer stage saved."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    localizer = dict(saved["localizer"], backbone=dict(saved["localizer"]["backbone"], weights=None))
    model, _ = build_localizer(localizer, saved["num_classes"])  # the trained weights replace any init
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), localizer["type"]


def localizer_record(localizer: dict) -> dict:
    """What `load_trained_localizer` needs to rebuild a model: plain values only."""
    kind, options = _method_options(localizer)
    return {"type": kind, "backbone": dict(localizer["backbone"]), "head_init": localizer.get("head_init", "default"),
            kind: dataclasses.asdict(options)}


def _method_options(localizer: dict):
    """(type, the method's checked Options) from a `localizer` section."""
    kind = localizer.get("type")
    if kind not in METHODS:
        raise ConfigError(f"localizer.type = {kind!r}; choose one of: {', '.join(METHODS)}")
    return kind, section_to_dataclass(METHODS[kind].Options, dict(localizer.get(kind) or {}), f"localizer.{kind}")
