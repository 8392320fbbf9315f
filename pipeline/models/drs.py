"""DRS: Discriminative Region Suppression (Kim, Han and Kim, AAAI 2021).

A VGG-16 classifier whose every ReLU is followed by a suppressor: each channel's
activations are capped at delta times the channel's maximum, so the most
discriminative regions cannot dominate and the class evidence spreads to the rest of
the object. delta is learned per channel from the channel's global average (a linear
layer and a sigmoid), or fixed (`delta=0.55`, say). The network is the reference's
'D1' VGG: pool4 becomes a 3x3 stride-1 pool, pool5 is gone and block 5 is dilated
(output stride 8); three 3x3 convs with suppressors and a 1x1 classifier follow, and
global average pooling gives the multilabel scores. Maps: the ReLU'd classifier output.

The suppressor is not VGG-specific: with `localizer.backbone.type='timm'` it follows
every activation of a timm EfficientNet's blocks (and of its stem and head conv), so
DRS starts from the ImageNet weights a package ships (`weights='packaged'`); a 1x1
classifier on the head conv's features gives the maps. The VGG-16 path stays for the
paper config. Negative images (labels all 0) are ordinary samples of the soft margin
loss, as for the CAM.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models

from pipeline.errors import ConfigError
from pipeline.models.backbone import build_backbone, init_heads, torchvision_state_dict
from pipeline.models.base import Localizer
from pipeline.localizer_options import DRSOptions
from pipeline.models.registry import LOCALIZERS

POOL4, POOL5 = 23, 30  # indices in torchvision's vgg16().features
BLOCK5_CONVS = (24, 26, 28)


class Suppressor(nn.Module):
    """The activation (ReLU, or the one it replaces), then each channel capped at delta x
    its maximum."""

    def __init__(self, channels: int, delta: float | None, activation: nn.Module | None = None):
        super().__init__()
        self.delta = delta
        self.activation = activation if activation is not None else nn.ReLU()
        if delta is None:
            self.controller = nn.Linear(channels, channels, bias=False)
            nn.init.normal_(self.controller.weight, 0.0, 0.01)  # delta starts near 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activation(x)
        peak = x.amax((2, 3), keepdim=True)
        if self.delta is None:
            delta = torch.sigmoid(self.controller(x.mean((2, 3))))[:, :, None, None]
        else:
            delta = self.delta
        return torch.minimum(x, peak * delta)


@LOCALIZERS.register_module(name="drs")
class DRSClassifier(Localizer):
    """DRS on the reference's VGG-16 (`localizer.backbone.type='vgg'`, or no type), or on
    a timm EfficientNet (`type='timm'`, see `TimmDRS`)."""

    Options = DRSOptions
    classification_terms = ("soft_margin",)

    def __init__(self, num_classes: int, weights: str | None = None, delta: float | None = None):
        super().__init__()
        vgg = models.vgg16(weights=None)
        state = torchvision_state_dict(models.vgg16, weights, "localizer.backbone.weights", "VGG-16")
        if state is not None:
            vgg.load_state_dict(state)
        layers = list(vgg.features)
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.ReLU):
                layers[i] = Suppressor(layers[i - 1].out_channels, delta)
            if i in BLOCK5_CONVS:
                layer.dilation, layer.padding = (2, 2), (2, 2)
        layers[POOL4] = nn.MaxPool2d(3, stride=1, padding=1)
        self.features = nn.Sequential(*layers[:POOL5])
        extra = []
        for _ in range(3):
            extra += [nn.Conv2d(512, 512, 3, padding=1), Suppressor(512, delta)]
        self.extra = nn.Sequential(*extra)
        self.classifier = nn.Conv2d(512, num_classes, 1)
        for conv in [m for m in self.extra if isinstance(m, nn.Conv2d)] + [self.classifier]:
            fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / fan_out))  # the reference's init
            nn.init.zeros_(conv.bias)

    @classmethod
    def build(cls, num_classes: int, backbone: dict, head_init: str, options: DRSOptions) -> Localizer:
        """The registry's constructor: `backbone` holds the VGG's `weights` (the VGG keeps
        the reference's head init; `head_init` is for the timm variant)."""
        kind = backbone.get("type", "vgg")
        if kind == "timm":
            return TimmDRS(build_backbone(**backbone), num_classes, options.delta, head_init)
        if kind != "vgg":
            raise ConfigError(f"localizer.backbone.type={kind!r}: DRS runs on 'vgg' (the reference's VGG-16) or "
                              "'timm' (an EfficientNet)")
        return cls(num_classes, backbone.get("weights"), options.delta)

    def heads(self) -> list[nn.Module]:
        """Modules trained with the head learning rate (the reference: 10x)."""
        return [self.extra, self.classifier]

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        """Without labels: ReLU'd class maps (B, C, h, w) at stride 8. With labels: loss terms."""
        maps = self.class_activation(images)
        if labels is None:
            return F.relu(maps)
        return {"soft_margin": F.multilabel_soft_margin_loss(maps.mean((2, 3)), labels.float())}

    def class_activation(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.extra(self.features(images)))


class TimmDRS(DRSClassifier):
    """DRS on a timm EfficientNet backbone (`pipeline.models.timm_backbone`): a
    suppressor after every activation of its BatchNormAct layers, a 1x1 classifier on
    the last features. The suppressors' controllers are new, so they train with the
    classifier at the head learning rate."""

    def __init__(self, backbone: nn.Module, num_classes: int, delta: float | None, head_init: str = "default"):
        Localizer.__init__(self)
        for module in list(backbone.modules()):
            act = getattr(module, "act", None)
            if isinstance(module, nn.BatchNorm2d) and act is not None and not isinstance(act, nn.Identity):
                module.act = Suppressor(module.num_features, delta, act)
        self.backbone = backbone
        self.classifier = nn.Conv2d(backbone.channels("deep"), num_classes, 1, bias=False)
        init_heads([self.classifier], head_init)

    def heads(self) -> list[nn.Module]:
        controllers = [m.controller for m in self.backbone.modules() if isinstance(m, Suppressor) and m.delta is None]
        return [self.classifier, *controllers]

    def class_activation(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(images)[1])
