"""The BAS localizer for multi-label WSSS (docs/method.md, section 1).

Classifier (1x1 conv) on the deep features gives the CAM F; the generator (3x3 conv +
sigmoid) on the mid features gives the class-wise foreground prediction map M. One
positive class c per image is sampled; erasing M_c from the mid features and passing
them through the deep part and the classifier *with frozen weights* gives the background
activation S_bg,
which L_bas suppresses relative to the full activation S.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from pipeline.errors import ConfigError
from pipeline.losses import area_loss, background_activation_loss, foreground_guidance_loss, multilabel_ce
from pipeline.map_statistics import COLLAPSED_ABOVE, COLLAPSED_BELOW
from pipeline.models.backbone import build_backbone, init_heads
from pipeline.models.two_level import TwoLevelBackbone
from pipeline.models.base import Localizer
from pipeline.localizer_options import BASOptions
from pipeline.models.registry import LOCALIZERS




def diagnostics(fpm_c: torch.Tensor, s_bg: torch.Tensor, s: torch.Tensor) -> dict[str, torch.Tensor]:
    """Numbers that say whether BAS is learning (logged per epoch, never in the loss):
    `diag_no_bas_gradient`, the share of samples where L_bas has no gradient (S <= 0, or
    S_bg > S so that L_bas is clipped to 1); `diag_mask_mean`, the mean of M_c;
    `diag_mask_saturated`, its share of pixels beyond 0.05 / 0.95 (vanishing sigmoid
    gradient); `diag_mask_collapsed`, the share of samples whose M_c is about 0 or 1
    everywhere (mean below 0.02 or above 0.98)."""
    per_sample = fpm_c.flatten(1).mean(1)
    return {
        "diag_no_bas_gradient": ((s <= 0) | (F.relu(s_bg) > F.relu(s))).float().mean(),
        "diag_mask_mean": per_sample.mean(),
        "diag_mask_saturated": ((fpm_c < 0.05) | (fpm_c > 0.95)).float().mean(),
        "diag_mask_collapsed": ((per_sample < COLLAPSED_BELOW) | (per_sample > COLLAPSED_ABOVE)).float().mean(),
    }


@LOCALIZERS.register_module(name="bas")
class BASLocalizer(Localizer):
    """`erased_bn`: BatchNorm statistics of the erased pass. 'batch' (the paper's code)
    normalises the erased features by their own batch statistics, which undoes a uniform
    erasure; 'running' uses the running statistics, so erasing lowers the activation,
    and compares S_bg with an S computed under the same statistics.

    Negative images (no positive class; labels all 0): a class is drawn uniformly among
    all classes, and only L_area (its map should be empty: the image has none of it) and
    L_mcls (with `background_logit`: all scores below the background's) see them; L_frg
    and L_bas, which need an object of the class, average over the positive images only."""

    Options = BASOptions
    classification_terms = ("mcls",)
    maps_are_probabilities = True  # export averages M over views instead of max-normalising it

    def __init__(self, backbone: TwoLevelBackbone, num_classes: int, erased_bn: str = "batch",
                 head_init: str = "default", background_logit: bool = False):
        super().__init__()
        if num_classes == 1 and not background_logit:
            raise ConfigError("localizer.bas: with one class, L_mcls is identically 0 (no other class to compare "
                              "with); set localizer.bas.background_logit=True")
        self.erased_bn = erased_bn  # checked by BASOptions
        self.background_logit = background_logit
        self.backbone = backbone
        self.classifier = nn.Conv2d(backbone.channels("deep"), num_classes, 1, bias=False)
        self.generator = nn.Conv2d(backbone.channels("mid"), num_classes, 3, padding=1, bias=False)
        init_heads(self.heads(), head_init)

    @classmethod
    def build(cls, num_classes: int, backbone: dict, head_init: str, options: BASOptions) -> "BASLocalizer":
        return cls(build_backbone(**backbone), num_classes, options.erased_bn, head_init, options.background_logit)

    def heads(self) -> list[nn.Module]:
        """Modules trained with the larger learning rate."""
        return [self.classifier, self.generator]

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        """Without labels: foreground maps M (B, C, h, w) in (0, 1). With labels: the
        unweighted loss terms {mcls, frg, bas, area}."""
        if labels is None:  # the maps come from the mid features alone: the deep part is not run
            return torch.sigmoid(self.generator(self.backbone.forward_mid(images)))
        mid, deep = self.backbone(images)
        fpm = torch.sigmoid(self.generator(mid))
        cam = self.classifier(deep)
        scores = cam.mean((2, 3))
        positive = labels.sum(1) > 0
        # one positive class per image; a negative image: any class
        draw = torch.where(positive[:, None], labels.float(), torch.ones_like(labels, dtype=torch.float))
        target = torch.multinomial(draw, 1).squeeze(1)
        rows = torch.arange(len(target), device=target.device)
        fpm_c = fpm[rows, target]  # (B, h, w)
        # Only M carries gradient into the background term: features detached, weights frozen.
        bg_scores = self.frozen_scores(mid.detach() * (1 - fpm_c[:, None]))
        s_bg, s = bg_scores[rows, target], scores[rows, target]
        if self.erased_bn == "running" and self.training:
            # S under the same (running) statistics as S_bg, so that erasing nothing
            # gives S_bg = S exactly; S is detached in L_bas anyway.
            with torch.no_grad():
                s = self.frozen_scores(mid.detach())[rows, target]
        pos = rows[positive]
        seen = pos if len(pos) else rows  # diagnostics of the positives (of all, in a batch of negatives)
        return {
            "mcls": multilabel_ce(scores, labels, self.background_logit),
            "frg": _mean_over(foreground_guidance_loss(cam[pos], fpm_c[pos], target[pos], "sum"), len(pos)),
            "bas": _mean_over(background_activation_loss(s_bg[pos], s[pos]).sum(), len(pos)),
            "area": area_loss(fpm_c).mean(),
            **diagnostics(fpm_c[seen].detach(), s_bg[seen].detach(), s[seen].detach()),
        }

    def class_activation(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(images)[1])

    def background_activation(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, C): L_bas of every labelled class with its own map erased, as in training
        but for each class at once and under the model's current mode (the erasure check,
        `pipeline/erasure_check.py`, runs it in eval mode); NaN where a class is absent."""
        mid, deep = self.backbone(images)
        fpm = torch.sigmoid(self.generator(mid))
        scores = self.classifier(deep).mean((2, 3))
        out = torch.full_like(scores, float("nan"))
        for b, c in labels.nonzero().tolist():
            s_bg = self.frozen_scores(mid[b:b + 1] * (1 - fpm[b:b + 1, c:c + 1]))[0, c]
            out[b, c] = background_activation_loss(s_bg, scores[b, c])
        return out

    def frozen_scores(self, mid: torch.Tensor) -> torch.Tensor:
        """GAP class scores of the deep part + classifier with detached weights, on copies of
        the BatchNorm buffers so the real running statistics stay."""
        deep_part = self.backbone.deep
        state = {n: p.detach() for n, p in deep_part.named_parameters()}
        state.update({n: b.clone() for n, b in deep_part.named_buffers()})
        was_training = deep_part.training
        deep_part.train(was_training and self.erased_bn == "batch")
        try:
            deep = functional_call(deep_part, state, (mid,))
        finally:
            deep_part.train(was_training)
        return F.conv2d(deep, self.classifier.weight.detach()).mean((2, 3))


def _mean_over(total: torch.Tensor, count: int) -> torch.Tensor:
    """`total` / `count`, 0 (with gradient graph intact) when no image counts."""
    return total / max(count, 1)
