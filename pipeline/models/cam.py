"""The CAM baseline: ResNet + 1x1 classifier on layer4, multilabel soft margin loss.

A negative image (labels all 0) is an ordinary sample of the per-class binary loss:
every class score is pushed down."""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.backbone import build_backbone, init_heads
from pipeline.models.two_level import TwoLevelBackbone
from pipeline.models.base import Localizer
from pipeline.localizer_options import CAMOptions
from pipeline.models.registry import LOCALIZERS


@LOCALIZERS.register_module(name="cam")
class CAMClassifier(Localizer):
    Options = CAMOptions
    classification_terms = ("soft_margin",)

    def __init__(self, backbone: TwoLevelBackbone, num_classes: int, head_init: str = "default"):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Conv2d(backbone.channels("deep"), num_classes, 1, bias=False)
        init_heads(self.heads(), head_init)

    @classmethod
    def build(cls, num_classes: int, backbone: dict, head_init: str, options: CAMOptions) -> "CAMClassifier":
        return cls(build_backbone(**backbone), num_classes, head_init)

    def heads(self) -> list[nn.Module]:
        """Modules trained with the larger learning rate."""
        return [self.classifier]

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        """Without labels: class activation maps (B, C, h, w), ReLU'd. With labels: loss terms."""
        cam = self.class_activation(images)
        if labels is None:
            return F.relu(cam)
        scores = cam.mean((2, 3))
        return {"soft_margin": F.multilabel_soft_margin_loss(scores, labels.float())}

    def class_activation(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(images)[1])

