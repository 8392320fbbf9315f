"""Localization networks, as plug-ins: BAS, the CAM baseline, DRS.

A localizer is a `Localizer` subclass (`pipeline/models/base.py`: its docstring is the
contract) registered in `LOCALIZERS` with `@LOCALIZERS.register_module(name=...)`;
`localizer.type` names it, `localizer.<type>` holds its own options. Adding a method is
its model file (registered where the class is defined) and a config; a model outside
the project is loaded by the config's `custom_imports = dict(imports=['my_module'])`.
"""

from __future__ import annotations

import dataclasses

import torch

from pipeline.config import section_to_dataclass
from pipeline.errors import ConfigError
from pipeline.models.backbone import ResNetBackbone, build_backbone
from pipeline.models.base import Localizer
from pipeline.models.registry import LOCALIZERS
from pipeline.models import bas, cam, drs  # noqa: F401  (register the built-in localizers)

__all__ = ["ResNetBackbone", "build_backbone", "Localizer", "LOCALIZERS", "build_localizer", "load_trained_localizer"]


def build_localizer(localizer: dict, num_classes: int) -> tuple[Localizer, dict[str, float]]:
    """(model, loss weights) from a `localizer` config section: type, backbone, head_init
    and the method's own section."""
    kind, options = _method_options(localizer)
    model = LOCALIZERS.get(kind).build(num_classes, dict(localizer["backbone"]),
                                       localizer.get("head_init", "default"), options)
    return model, {k: float(v) for k, v in options.loss_weights.items()}


def load_trained_localizer(path, device="cpu"):
    """(model in eval mode, its type) from a `model.pth` a localizer stage saved."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    localizer = dict(saved["localizer"], backbone=dict(saved["localizer"]["backbone"], weights=None))
    model, _ = build_localizer(localizer, saved["num_classes"])  # the trained weights replace any init
    model.load_state_dict(saved["state_dict"])
    model.num_classes = saved["num_classes"]
    return model.to(device).eval(), localizer["type"]


def localizer_record(localizer: dict) -> dict:
    """What `load_trained_localizer` needs to rebuild a model: plain values only."""
    kind, options = _method_options(localizer)
    return {"type": kind, "backbone": dict(localizer["backbone"]), "head_init": localizer.get("head_init", "default"),
            kind: dataclasses.asdict(options)}


def _method_options(localizer: dict):
    """(type, the method's checked Options) from a `localizer` section."""
    kind = localizer.get("type")
    method = LOCALIZERS.get(kind) if isinstance(kind, str) else None
    if method is None:
        raise ConfigError(f"localizer.type = {kind!r} is not a registered localizer; choose one of: "
                          f"{', '.join(sorted(LOCALIZERS.module_dict))} (or register your own: README, 'Plug-ins')")
    return kind, section_to_dataclass(method.Options, dict(localizer.get(kind) or {}), f"localizer.{kind}")
