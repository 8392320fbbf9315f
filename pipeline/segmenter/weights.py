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
    from pipeline.segmenter import mmcv_compat

    mmcv_compat.install()
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


def timm_to_mmseg_backbone(name: str, weights: str, output_stride: int) -> dict[str, torch.Tensor]:
    """The ImageNet weights of timm's `name` (the localizer's options: 'packaged', 'timm',
    a .pth) as the state dict of mmseg's TIMMBackbone (features only, `timm_model.` prefix)."""
    import timm

    from pipeline.models.timm_backbone import timm_state_dict

    full = timm_state_dict(name, weights, output_stride, "segmenter.weights")
    features = timm.create_model(name, features_only=True, pretrained=False, out_indices=(1, 2, 3, 4),
                                 output_stride=output_stride).state_dict()
    missing = [k for k in features if k not in full or full[k].shape != features[k].shape]
    if missing:
        raise ConfigError(f"segmenter.weights={weights!r}: no weights for {missing[:3]} of timm's {name}")
    return {f"timm_model.{k}": full[k] for k in features}


def write_backbone_init(model, path: Path) -> Path | None:
    """Write mmseg-ready backbone weights of the `segmenter` section `model` to `path`
    (for init_cfg=Pretrained); None for random init."""
    if model.weights is None:
        return None
    if model.backbone == "timm":
        mapped = timm_to_mmseg_backbone(model.timm_name, model.weights, model.output_stride)
    else:
        mapped = torchvision_to_mmseg_resnet(resnet_state_dict(model.depth, model.weights, "segmenter.weights"),
                                             model.depth)
    with atomic_path(path) as tmp:
        torch.save({"state_dict": mapped, "meta": {"source": str(model.weights)}}, tmp)
    return path
