"""ImageNet initialisation of mmseg's ResNet from torchvision weights.

mmseg's `ResNet` (style 'pytorch', plain stem) names its parameters as torchvision
does (conv1, bn1, layerN.M.convK/bnK, downsample.0/1); the mapping drops torchvision's
classifier and checks every remaining name and shape against mmseg's module, so a
wrong file fails here and not as a silently half-initialised backbone.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.atomic import atomic_path
from pipeline.errors import ConfigError
from pipeline.models.backbone import resnet_state_dict


def torchvision_to_mmseg_resnet(state: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    from mmseg.models.backbones import ResNet

    expected = ResNet(depth=depth).state_dict()
    mapped = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    wrong = [k for k in set(expected) & set(mapped) if expected[k].shape != mapped[k].shape]
    if missing or unexpected or wrong:
        raise ConfigError(f"these weights do not fit mmseg's ResNet-{depth}: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}, wrong shape {wrong[:3]}")
    return mapped


def write_backbone_init(depth: int, weights: str | None, path: Path) -> Path | None:
    """Write mmseg-ready backbone weights to `path` (for init_cfg=Pretrained); None for random init."""
    state = resnet_state_dict(depth, weights, "segmenter.weights")
    if state is None:
        return None
    mapped = torchvision_to_mmseg_resnet(state, depth)
    with atomic_path(path) as tmp:
        torch.save({"state_dict": mapped, "meta": {"source": str(weights)}}, tmp)
    return path
