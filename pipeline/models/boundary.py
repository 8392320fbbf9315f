"""IRN's class-boundary branch: a boundary map at stride 4 from all five levels of a ResNet.

Each level (stem, layer1..4) gets a 1x1 conv to 32 channels, GroupNorm and ReLU, is
resized to the stem's stride-4 grid, and the concatenation goes through a 1x1 conv to
one boundary logit. IRN keeps the ImageNet backbone frozen (`train_backbone=False`)
and trains these heads alone; from random init the backbone must learn too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.backbone import ResNetBackbone, build_resnet_backbone, out_channels
from pipeline.relations import affinity_loss_terms, pair_affinity, relation_labels

LEVEL_CHANNELS = 32


class BoundaryNet(nn.Module):
    def __init__(self, backbone: ResNetBackbone, radius: int = 10, train_backbone: bool = False):
        super().__init__()
        self.backbone, self.radius, self.train_backbone = backbone, radius, train_backbone
        if not train_backbone:
            backbone.requires_grad_(False)
        stem_channels = backbone.stem[0].out_channels
        layers = (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4)
        channels = [stem_channels] + [out_channels(layer) for layer in layers]
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
        features, x = [], images
        for part in (self.backbone.stem, self.backbone.layer1, self.backbone.layer2, self.backbone.layer3,
                     self.backbone.layer4):
            x = part(x)
            features.append(x if self.train_backbone else x.detach())
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



def load_boundary_net(path, device="cpu") -> BoundaryNet:
    """A boundary net saved by the train_boundary stage, in eval mode."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = BoundaryNet(build_resnet_backbone(**dict(saved["backbone"], weights=None)), saved["radius"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()
