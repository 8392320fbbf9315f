"""The localizers' loss terms, as plain functions of tensors (docs/method.md, section 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multilabel_ce(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_mcls: for each positive class p, softmax CE of s_p against the image's negatives.

    Summed over positives, averaged over the batch. scores, labels: (B, C), labels 0/1.
    -log(e^{s_p} / (e^{s_p} + sum_n e^{s_n})) = softplus(logsumexp_n(s_n) - s_p).
    """
    positive = labels > 0
    negatives_lse = torch.logsumexp(scores.masked_fill(positive, float("-inf")), dim=1, keepdim=True)
    per_class = F.softplus(negatives_lse - scores)  # 0 where an image has no negatives
    return (per_class * positive).sum(1).mean()


def background_activation_loss(bg_score: torch.Tensor, fg_score: torch.Tensor) -> torch.Tensor:
    """L_bas per image: ReLU(S_bg) / (ReLU(S) + 1e-8), 1 where S_bg > S; S detached."""
    s_bg, s = F.relu(bg_score), F.relu(fg_score).detach()
    ratio = s_bg / (s + 1e-8)
    return torch.where(s_bg > s, torch.ones_like(ratio), ratio)


def area_loss(fpm_c: torch.Tensor) -> torch.Tensor:
    """L_area per image: the mean of the chosen class's foreground map."""
    return fpm_c.flatten(1).mean(1)


def foreground_guidance_loss(cam: torch.Tensor, fpm_c: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_frg: CE over classes of GAP(F.detach() * M_c), target the sampled class."""
    logits = (cam.detach() * fpm_c[:, None]).mean((2, 3))
    return F.cross_entropy(logits, target)
