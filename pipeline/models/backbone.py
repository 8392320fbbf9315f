"""Localizer backbones give features at two levels, named as timm's `feature_info` lists
them: 'mid' (where BAS's generator reads the foreground map) and 'deep' (what the
classifier reads), both at the output stride. Every backbone has `forward_mid(x)`, the
module `deep` from mid to deep features, `feature_info` and `channels(level)`.

Here: torchvision ResNets, mid = layers 1-3, deep = layer 4. Output stride 16 as in IRN
and BAS: layer4's stride becomes 1 (no dilation), so a 448 input gives 28x28 maps and
both levels share one size. Output stride 8 also sets layer3's stride to 1 (for small
images, such as the synthetic set's).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models

from pipeline.errors import ConfigError
from pipeline.log import get_logger
from pipeline.models.two_level import TwoLevelBackbone

DEPTHS = {18: models.resnet18, 34: models.resnet34, 50: models.resnet50, 101: models.resnet101}


class FrozenStatsBatchNorm2d(nn.Module):
    """BatchNorm that always normalises with its running statistics (IRN's
    FixedBatchNorm): the statistics never change, the affine weight and bias still
    learn. Not a `_BatchNorm`, so SyncBatchNorm conversion leaves it alone."""

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        self.eps = bn.eps
        self.weight, self.bias = bn.weight, bn.bias
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class ResNetBackbone(TwoLevelBackbone):
    """`frozen_bn`: every BatchNorm keeps its (ImageNet) statistics; `frozen_stages`:
    IRN's stages that get no gradient, stage 1 = stem + layer1, stage 2 = layer2 (IRN's
    CAM: 2)."""

    def __init__(self, resnet: models.ResNet, output_stride: int, frozen_bn: bool = False, frozen_stages: int = 0):
        super().__init__()
        if output_stride not in (8, 16):
            raise ConfigError(f"localizer.backbone.output_stride must be 8 or 16, got {output_stride}")
        if not 0 <= frozen_stages <= 2:
            raise ConfigError(f"backbone.frozen_stages must be 0, 1 (stem + layer1) or 2 (+ layer2), got {frozen_stages}")
        _remove_stride(resnet.layer4)  # layer3 and layer4 maps share one size, as BAS needs
        if output_stride == 8:
            _remove_stride(resnet.layer3)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.feature_info = [dict(level="mid", module="layer3", num_chs=out_channels(resnet.layer3),
                                  reduction=output_stride),
                             dict(level="deep", module="layer4", num_chs=out_channels(resnet.layer4),
                                  reduction=output_stride)]
        if frozen_bn:
            _freeze_batchnorm(self)
        self.frozen = [self.stem, self.layer1, self.layer2][:(0, 2, 3)[frozen_stages]]
        for part in self.frozen:
            part.requires_grad_(False)

    @property
    def deep(self) -> nn.Module:
        return self.layer4  # torchvision's name, which its weights use

    def forward_mid(self, x: torch.Tensor) -> torch.Tensor:
        for part in (self.stem, self.layer1, self.layer2):
            x = part(x)
            if part is (self.frozen[-1] if self.frozen else None):
                x = x.detach()
        return self.layer3(x)


def build_backbone(type: str = "resnet", **options) -> nn.Module:
    """A localizer backbone from its config section: `type='resnet'` (torchvision, below)
    or `type='timm'` (`name=` a timm EfficientNet / MobileNet; see timm_backbone.py).
    Either is a `TwoLevelBackbone`: (mid features, deep features)."""
    if type == "timm":
        from pipeline.models.timm_backbone import build_timm_backbone

        return build_timm_backbone(**options)
    if type != "resnet":
        raise ConfigError(f"localizer.backbone.type must be 'resnet' or 'timm', got {type!r}")
    return build_resnet_backbone(**options)


def build_resnet_backbone(depth: int = 50, output_stride: int = 16, weights: str | None = None,
                          frozen_bn: bool = False, frozen_stages: int = 0) -> ResNetBackbone:
    """`weights`: None (random init), a torchvision weights name ('IMAGENET1K_V1',
    'DEFAULT'), or the path of a local torchvision ResNet state dict."""
    resnet = DEPTHS[_check_depth(depth, "localizer.backbone.depth")](weights=None)
    state = resnet_state_dict(depth, weights, "localizer.backbone.weights")
    if state is not None:  # None: the training stage says so loudly; trained weights need no init
        resnet.load_state_dict(state)
    return ResNetBackbone(resnet, output_stride, frozen_bn, frozen_stages)


def resnet_state_dict(depth: int, weights: str | None, key: str) -> dict[str, torch.Tensor] | None:
    """A torchvision ResNet-`depth` state dict (classifier `fc.*` included when present),
    or None for random init; see `torchvision_state_dict`."""
    return torchvision_state_dict(DEPTHS[_check_depth(depth, key)], weights, key, f"ResNet-{depth}", optional=("fc.",))


def torchvision_state_dict(builder, weights: str | None, key: str, name: str,
                    optional: tuple[str, ...] = ()) -> dict[str, torch.Tensor] | None:
    """The state dict of torchvision model `builder` (e.g. `models.resnet50`).

    `weights`: a torchvision weights name, fetched through torchvision's weights API
    into the torch hub cache; the path of a local .pth holding such a state dict; or
    None (random init: returns None). `key` names the config key in error messages;
    keys starting with `optional` may be missing from a local file.
    """
    if weights is None:
        return None
    path = Path(str(weights))
    if path.suffix in (".pth", ".pt") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{key}: no file {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        expected = builder(weights=None).state_dict()
        missing = [k for k in expected if k not in state and not k.startswith(optional)]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            raise ConfigError(f"{key}: {path} is not a torchvision {name} state dict "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        get_logger().info("%s weights from %s", name, path)
        return state
    enum = models.get_model_weights(builder)
    if weights not in enum.__members__:  # DEFAULT is one of them
        raise ConfigError(f"{key}={weights!r}: neither a torchvision weights name of {name} "
                          f"({', '.join(enum.__members__)}) nor a .pth file")
    entry = enum[weights]
    get_logger().info("%s with torchvision weights %s", name, entry)
    return entry.get_state_dict(progress=True, check_hash=True)  # torchvision's weights API: downloads once


def _check_depth(depth: int, key: str) -> int:
    if depth not in DEPTHS:
        raise ConfigError(f"{key}: ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
    return depth


def init_heads(heads: list[nn.Module], how: str) -> None:
    """'default': PyTorch's init; 'xavier': xavier_uniform, as the BAS reference does."""
    if how not in ("default", "xavier"):
        raise ConfigError(f"localizer.head_init must be 'default' or 'xavier', got {how!r}")
    if how == "xavier":
        for head in heads:
            nn.init.xavier_uniform_(head.weight)


def _freeze_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenStatsBatchNorm2d(child))
        else:
            _freeze_batchnorm(child)


def _remove_stride(layer: nn.Sequential) -> None:
    block = layer[0]
    conv = block.conv2 if isinstance(block, models.resnet.Bottleneck) else block.conv1
    conv.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)


def out_channels(layer: nn.Sequential) -> int:
    block = layer[-1]
    return (block.conv3 if isinstance(block, models.resnet.Bottleneck) else block.conv2).out_channels
