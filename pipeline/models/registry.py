"""`LOCALIZERS`: the registry `localizer.type` looks up (the contract: pipeline/models/base.py)."""

from mmengine.registry import Registry

LOCALIZERS = Registry("wsss localizer")
