"""The localizers' loss terms, as plain functions of tensors (docs/method.md, section 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multilabel_ce(scores: torch.Tensor, labels: torch.Tensor, background_logit: bool = False) -> torch.Tensor:
    """L_mcls: for each positive class p, softmax CE of s_p against the image's negatives.

    Summed over positives, averaged over the batch. scores, labels: (B, C), labels 0/1.
    -log(e^{s_p} / (e^{s_p} + sum_n e^{s_n})) = softplus(logsumexp_n(s_n) - s_p).
    `background_logit`: a constant 0 logit joins every image's negatives, and an image
    without positives (a negative image) takes -log(1 / (1 + sum_k e^{s_k})), the CE of
    that background logit. With one class this is the binary CE; without it, a one-class
    set has no negatives to compare with and a negative image gives no signal.
    """
    positive = labels > 0
    negative_scores = scores.masked_fill(positive, float("-inf"))
    if background_logit:
        negative_scores = torch.cat([negative_scores, scores.new_zeros(len(scores), 1)], 1)
    negatives_lse = torch.logsumexp(negative_scores, dim=1, keepdim=True)
    per_class = F.softplus(negatives_lse - scores)  # 0 where an image has no negatives
    loss = (per_class * positive).sum(1)
    if background_logit:
        loss = loss + torch.where(positive.any(1), 0.0, F.softplus(torch.logsumexp(scores, 1)))
    return loss.mean()


def background_activation_loss(bg_score: torch.Tensor, fg_score: torch.Tensor) -> torch.Tensor:
    """L_bas per image: ReLU(S_bg) / (ReLU(S) + 1e-8), 1 where S_bg > S; S detached."""
    s_bg, s = F.relu(bg_score), F.relu(fg_score).detach()
    ratio = s_bg / (s + 1e-8)
    return torch.where(s_bg > s, torch.ones_like(ratio), ratio)


def area_loss(fpm_c: torch.Tensor) -> torch.Tensor:
    """L_area per image: the mean of the chosen class's foreground map."""
    return fpm_c.flatten(1).mean(1)


def foreground_guidance_loss(cam: torch.Tensor, fpm_c: torch.Tensor, target: torch.Tensor,
                              reduction: str = "mean") -> torch.Tensor:
    """L_frg: CE over classes of GAP(F.detach() * M_c), target the sampled class."""
    logits = (cam.detach() * fpm_c[:, None]).mean((2, 3))
    return F.cross_entropy(logits, target, reduction=reduction)
