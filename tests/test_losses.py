"""Each loss term against its formula on small hand-built tensors."""

import math

import torch
import torch.nn.functional as F

from pipeline.losses import area_loss, background_activation_loss, foreground_guidance_loss, multilabel_ce


def test_multilabel_ce_one_positive_is_softmax_against_negatives():
    scores = torch.tensor([[2.0, 0.0, 1.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0]])
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(1)))
    assert torch.isclose(multilabel_ce(scores, labels), torch.tensor(expected))


def test_multilabel_ce_sums_positives_each_against_negatives_only_and_averages_batch():
    scores = torch.tensor([[2.0, 0.5, 1.0], [0.0, 0.0, 3.0]])
    labels = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    ce = lambda p, negs: -math.log(math.exp(p) / (math.exp(p) + sum(math.exp(n) for n in negs)))  # noqa: E731
    image0 = ce(2.0, [1.0]) + ce(0.5, [1.0])  # positives never compete with each other
    image1 = ce(3.0, [0.0, 0.0])
    assert torch.isclose(multilabel_ce(scores, labels), torch.tensor((image0 + image1) / 2), atol=1e-6)


def test_multilabel_ce_is_zero_without_negatives():
    assert multilabel_ce(torch.tensor([[1.0, -2.0]]), torch.ones(1, 2)).item() == 0.0


def test_background_activation_ratio_clamps_and_relus():
    s_bg = torch.tensor([1.0, 3.0, -1.0, 0.5])
    s = torch.tensor([2.0, 2.0, 1.0, -1.0])
    # 1/2; S_bg > S -> 1; ReLU(S_bg)=0 -> 0; ReLU(S)=0 < ReLU(S_bg) -> 1
    assert torch.allclose(background_activation_loss(s_bg, s), torch.tensor([0.5, 1.0, 0.0, 1.0]))


def test_background_activation_does_not_push_on_the_full_score():
    s_bg, s = torch.tensor([1.0], requires_grad=True), torch.tensor([2.0], requires_grad=True)
    background_activation_loss(s_bg, s).sum().backward()
    assert s.grad is None and torch.isclose(s_bg.grad, torch.tensor([0.5]))


def test_area_is_the_mean_of_the_map():
    m = torch.tensor([[[0.0, 1.0], [0.5, 0.5]]])
    assert torch.isclose(area_loss(m), torch.tensor([0.5])).all()


def test_foreground_guidance_is_ce_of_pooled_masked_cam():
    cam = torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]])  # (B=1, C=2, h=1, w=2)
    m = torch.tensor([[[1.0, 0.0]]])  # keeps the first pixel
    logits = torch.tensor([[1.0 / 2, 2.0 / 2]])
    expected = F.cross_entropy(logits, torch.tensor([0]))
    assert torch.isclose(foreground_guidance_loss(cam, m, torch.tensor([0])), expected)


def test_multilabel_ce_with_a_background_logit_is_the_binary_ce_for_one_class():
    scores = torch.tensor([[1.5], [-0.5]])
    labels = torch.tensor([[1.0], [0.0]])  # a positive and a negative image
    expected = F.binary_cross_entropy_with_logits(scores, labels, reduction="none").sum(1).mean()
    assert torch.isclose(multilabel_ce(scores, labels, background_logit=True), expected, atol=1e-6)
    assert multilabel_ce(scores, labels) == 0  # without it, one class teaches nothing


def test_multilabel_ce_with_a_background_logit_pushes_a_negative_image_below_background():
    scores = torch.tensor([[2.0, -1.0, 0.5]], requires_grad=True)
    loss = multilabel_ce(scores, torch.zeros(1, 3), background_logit=True)
    assert torch.isclose(loss, torch.log1p(scores.exp().sum()))
    loss.backward()
    assert (scores.grad > 0).all()  # every class score goes down
