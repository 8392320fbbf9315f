"""IRN's class-boundary branch: a boundary map at stride 4 from every level of a backbone.

Each level (a ResNet's stem and layer1..4, as IRN; or a timm EfficientNet's stride-4 to
stride-32 stages) gets a 1x1 conv to 32 channels, GroupNorm and ReLU, is resized to the
first level's stride-4 grid, and the concatenation goes through a 1x1 conv to one
boundary logit. IRN keeps the ImageNet backbone frozen (`train_backbone=False`) and
trains these heads alone; from random init the backbone must learn too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.backbone import ResNetBackbone, build_resnet_backbone, out_channels
from pipeline.relations import affinity_loss_terms, pair_affinity, relation_labels

LEVEL_CHANNELS = 32


class ResNetLevels(nn.Module):
    """A ResNet's five levels, stem (stride 4) to layer4: IRN's."""

    def __init__(self, resnet: ResNetBackbone):
        super().__init__()
        self.resnet = resnet
        self.channels = [resnet.stem[0].out_channels] + [
            out_channels(layer) for layer in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for part in (self.resnet.stem, self.resnet.layer1, self.resnet.layer2, self.resnet.layer3,
                     self.resnet.layer4):
            x = part(x)
            features.append(x)
        return features


class TimmLevels(nn.Module):
    """A timm EfficientNet's stages at strides 4, 8, 16 and 32 (timm's features_only),
    from ImageNet-normalised input re-normalised to its weights' statistics."""

    def __init__(self, name: str, weights: str | None):
        super().__init__()
        import timm

        from pipeline.models.timm_backbone import Renormalize, timm_state_dict

        self.net = timm.create_model(name, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
        if weights is not None:
            state = timm_state_dict(name, weights, 32, "boundary_net.backbone.weights")
            own = self.net.state_dict()
            self.net.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)
        self.channels = list(self.net.feature_info.channels())
        self.renormalize = Renormalize(self.net.pretrained_cfg)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net(self.renormalize(x))


def build_boundary_levels(backbone: dict, weights_override: str | None = "keep") -> nn.Module:
    """The levels module a `boundary_net.backbone` section names: a ResNet (IRN's;
    `depth`, `weights`, ...) or, with `type='timm'`, a timm EfficientNet (`name`,
    `weights`: 'packaged', 'timm' or a .pth)."""
    options = dict(backbone)
    if weights_override != "keep":
        options["weights"] = weights_override
    if options.pop("type", "resnet") == "timm":
        return TimmLevels(options["name"], options.get("weights"))
    return ResNetLevels(build_resnet_backbone(**options))


class BoundaryNet(nn.Module):
    def __init__(self, backbone: nn.Module, radius: int = 10, train_backbone: bool = False):
        """`backbone`: a levels module (`ResNetLevels`, `TimmLevels`): images -> a list of
        features, the first at stride 4, and their `channels`."""
        super().__init__()
        self.backbone, self.radius, self.train_backbone = backbone, radius, train_backbone
        if not train_backbone:
            backbone.requires_grad_(False)
        channels = backbone.channels
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, LEVEL_CHANNELS, 1, bias=False), nn.GroupNorm(4, LEVEL_CHANNELS),
                          nn.ReLU(inplace=True))
            for c in channels)
        self.classifier = nn.Conv2d(LEVEL_CHANNELS * len(channels), 1, 1)

    def heads(self) -> list[nn.Module]:
        """Modules trained with the head learning rate."""
        return [self.levels, self.classifier]

    def train(self, mode: bool = True) -> "BoundaryNet":
        super().train(mode)
        if not self.train_backbone:  # a frozen backbone keeps its BatchNorm statistics too
            self.backbone.eval()
        return self

    def boundary_logits(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w) at stride 4."""
        features = [f if self.train_backbone else f.detach() for f in self.backbone(images)]
        size = features[0].shape[-2:]
        levels = [F.interpolate(level(f), size=size, mode="bilinear", align_corners=False)
                  if f.shape[-2:] != size else level(f) for level, f in zip(self.levels, features)]
        return self.classifier(torch.cat(levels, 1))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        """Without labels: boundary probabilities (B, h, w). With (B, h, w) relation
        labels at the same stride-4 grid: IRN's affinity loss terms."""
        boundary = torch.sigmoid(self.boundary_logits(images)[:, 0].float())
        if labels is None:
            return boundary
        if labels.shape != boundary.shape:
            raise ValueError(f"relation labels {tuple(labels.shape)} do not match the boundary map "
                             f"{tuple(boundary.shape)}")
        return affinity_loss_terms(pair_affinity(boundary, self.radius), relation_labels(labels, self.radius))

    @torch.no_grad()
    def predict(self, image: torch.Tensor, flip: bool = True) -> torch.Tensor:
        """(h, w) boundary probabilities of one normalised image (1, 3, H, W), averaged with
        its mirror image's where `flip`: the map the random walk runs on."""
        if not flip:
            return self(image)[0]
        pair = self(torch.cat([image, image.flip(3)]))
        return (pair[0] + pair[1].flip(1)) / 2



def load_boundary_net(path, device="cpu") -> BoundaryNet:
    """A boundary net saved by the train_boundary stage, in eval mode."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = BoundaryNet(build_boundary_levels(saved["backbone"], weights_override=None), saved["radius"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()
