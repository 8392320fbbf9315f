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


def timm_to_mmseg_backbone(name: str, weights: str, output_stride: int,
                           full: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The weights of timm's `name` (the localizer's options: 'packaged', 'timm', a .pth;
    or `full`, timm's whole-model state dict) as the state dict of mmseg's TIMMBackbone
    (features only, `timm_model.` prefix)."""
    import timm

    from pipeline.models.timm_backbone import timm_state_dict

    if full is None:
        full = timm_state_dict(name, weights, output_stride, "segmenter.weights")
    features = timm.create_model(name, features_only=True, pretrained=False, out_indices=(1, 2, 3, 4),
                                 output_stride=output_stride).state_dict()
    missing = [k for k in features if k not in full or full[k].shape != features[k].shape]
    if missing:
        raise ConfigError(f"segmenter.weights={weights!r}: no weights for {missing[:3]} of timm's {name}")
    return {f"timm_model.{k}": full[k] for k in features}


def write_backbone_init(model, path: Path, localizer: Path | None = None) -> Path | None:
    """Write mmseg-ready backbone weights of the `segmenter` section `model` to `path`
    (for init_cfg=Pretrained); None for random init. `localizer`: the trained localizer's
    model.pth, for weights='localizer'."""
    if model.weights is None:
        return None
    if model.weights == "localizer":
        name, state = localizer_timm_state(localizer)
        if name != model.timm_name:
            raise ConfigError(f"segmenter.weights='localizer': the localizer is timm's {name}, the segmenter "
                              f"{model.timm_name}; set segmenter.timm_name={name!r}")
        mapped = timm_to_mmseg_backbone(name, "localizer", model.output_stride, full=state)
    elif model.backbone == "timm":
        mapped = timm_to_mmseg_backbone(model.timm_name, model.weights, model.output_stride)
    else:
        mapped = torchvision_to_mmseg_resnet(resnet_state_dict(model.depth, model.weights, "segmenter.weights"),
                                             model.depth)
    with atomic_path(path) as tmp:
        torch.save({"state_dict": mapped, "meta": {"source": str(model.weights)}}, tmp)
    return path


def localizer_timm_state(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """(timm model name, timm's whole-model state dict) of a trained localizer's timm
    backbone: weights that already know the data set's classes, for the segmenter's
    encoder. The localizer splits timm's model into (stem, early blocks) and (late blocks,
    head); they are put back under timm's own names (the classifier stays timm's init)."""
    import timm

    from pipeline.models import load_trained_localizer
    from pipeline.models.timm_backbone import TimmEfficientNetBackbone

    model, _ = load_trained_localizer(path)
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, TimmEfficientNetBackbone):
        raise ConfigError(f"segmenter.weights='localizer': the localizer in {path} has no timm backbone to lend")
    options = torch.load(path, map_location="cpu", weights_only=True)["localizer"]["backbone"]
    net = timm.create_model(options["name"], pretrained=False, output_stride=options.get("output_stride", 16))
    parts = {"conv_stem": backbone.to_mid[0], "bn1": backbone.to_mid[1], "conv_head": backbone.deep[-2],
             "bn2": backbone.deep[-1],
             **{f"blocks.{i}": block for i, block in enumerate([*backbone.to_mid[2:], *backbone.deep[:-2]])}}
    state = {f"{prefix}.{k}": v for prefix, part in parts.items() for k, v in part.state_dict().items()}
    state.update({k: v for k, v in net.state_dict().items() if k.startswith("classifier.")})
    net.load_state_dict(state)  # strict: every name and shape of timm's model, or an error
    return options["name"], net.state_dict()
