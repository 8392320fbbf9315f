import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.models import build_localizer, build_backbone


def tiny_batch(classes=5):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 64, 64)
    labels = torch.zeros(4, classes)
    labels[[0, 1, 2, 3], [0, 2, 4, 1]] = 1
    labels[0, 3] = 1
    return x, labels


@pytest.mark.parametrize("depth, c3, c4", [(18, 256, 512), (50, 1024, 2048)])
def test_backbone_output_stride_16_keeps_layer3_and_layer4_one_size(depth, c3, c4):
    backbone = build_backbone(depth=depth, output_stride=16)
    x3, x4 = backbone(torch.randn(1, 3, 64, 96))
    assert x3.shape == (1, c3, 4, 6) and x4.shape == (1, c4, 4, 6)
    assert build_backbone(depth=18, output_stride=8)(torch.randn(1, 3, 64, 64))[1].shape[-1] == 8


def test_backbone_rejects_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="depth"):
        build_backbone(depth=20)
    with pytest.raises(ConfigError, match="output_stride"):
        build_backbone(depth=18, output_stride=32)
    with pytest.raises(ConfigError, match="no file"):
        build_backbone(depth=18, weights=str(tmp_path / "missing.pth"))


def test_backbone_loads_a_local_torchvision_state_dict(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    backbone = build_backbone(depth=18, weights=str(tmp_path / "r18.pth"))
    assert torch.equal(backbone.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_bas_background_term_trains_only_the_generator_side():
    """L_bas reaches the generator (and, through M, the layers under it, as in the
    paper's code) but never layer4 or the classifier, whose weights are frozen for it."""
    model = build_localizer(dict(type="bas", backbone=dict(depth=18, output_stride=16)), 5)[0].eval()
    with torch.no_grad():  # positive scores, so that the ratio is neither 0 nor clamped to 1
        model.classifier.weight.abs_()
    x, labels = tiny_batch()
    bas = model(x, labels)["bas"]
    assert 0 < bas.item() < 1
    bas.backward()
    assert model.generator.weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad is None
    assert all(p.grad is None for p in model.backbone.layer4.parameters())
    assert model.backbone.layer3[0].conv1.weight.grad.abs().sum() > 0  # through M only


def test_bas_erased_pass_leaves_batchnorm_statistics_alone():
    model = build_localizer(dict(type="bas", backbone=dict(depth=18, output_stride=16)), 5)[0].train()
    bn = model.backbone.layer4[0].bn1
    before = bn.running_mean.clone(), bn.num_batches_tracked.clone()
    model.frozen_scores(torch.randn(2, 256, 4, 4))
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.num_batches_tracked, before[1])


@pytest.mark.parametrize("method, terms, side", [("bas", {"mcls", "frg", "bas", "area"}, 4), ("cam", {"soft_margin"}, 4),
                                                 ("drs", {"soft_margin"}, 8)])  # output stride 16, 16, 8
def test_models_return_maps_without_labels_and_terms_with(method, terms, side):
    model = build_localizer(dict(type=method, backbone=dict(depth=18, output_stride=16)), 5)[0]
    x, labels = tiny_batch()
    out = model(x, labels)
    assert {k for k in out if not k.startswith("diag_")} == terms
    assert all(v.ndim == 0 and not v.requires_grad for k, v in out.items() if k.startswith("diag_"))
    maps = model.eval()(x)
    assert maps.shape == (4, 5, side, side) and (maps >= 0).all()


@pytest.mark.parametrize("method", ["bas", "cam"])
def test_a_few_steps_lower_the_loss(method):
    """Ten SGD steps on one fixed batch: the weighted loss must fall."""
    from pipeline.training.optim import build_sgd

    torch.manual_seed(0)
    model, weights = build_localizer(dict(type=method, backbone=dict(depth=18, output_stride=16)), 5)
    x, labels = tiny_batch()
    optimizer = build_sgd(model, model.heads(), lr=0.01, head_lr_mult=10, momentum=0.9, weight_decay=1e-4)
    losses = []
    for _ in range(10):
        terms = model(x, labels)
        loss = sum(w * terms[k] for k, w in weights.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_sgd_has_real_momentum_and_ten_times_head_lr():
    from pipeline.training.optim import build_sgd

    model = build_localizer(dict(type="bas", backbone=dict(depth=18)), 5)[0]
    opt = build_sgd(model, model.heads(), lr=0.005, head_lr_mult=10, momentum=0.9, weight_decay=1e-4)
    backbone, heads = opt.param_groups
    assert backbone["momentum"] == 0.9 and backbone["weight_decay"] == 1e-4
    assert heads["lr"] == pytest.approx(0.05)
    assert {id(p) for p in heads["params"]} == {id(model.classifier.weight), id(model.generator.weight)}


def test_erased_pass_batch_statistics_undo_a_uniform_erasure_running_ones_do_not():
    """Why `localizer.bas.erased_bn` exists: with batch statistics, scaling every
    feature by (1 - M) for a uniform M changes nothing; with running statistics it does."""
    torch.manual_seed(0)
    x3 = torch.rand(4, 256, 4, 4)
    batch = build_localizer(dict(type="bas", backbone=dict(depth=18), bas=dict(erased_bn="batch")), 5)[0].train()
    assert torch.allclose(batch.frozen_scores(x3), batch.frozen_scores(0.5 * x3), atol=1e-3)
    running = build_localizer(dict(type="bas", backbone=dict(depth=18), bas=dict(erased_bn="running")), 5)[0].train()
    running.load_state_dict(batch.state_dict())
    bn = running.backbone.layer4[0].bn1
    before = bn.running_mean.clone()
    assert not torch.allclose(running.frozen_scores(x3), running.frozen_scores(0.5 * x3), atol=1e-3)
    assert running.backbone.layer4.training and torch.equal(bn.running_mean, before)


def test_running_statistics_compare_like_with_like_erasing_nothing_keeps_the_score():
    """With erased_bn='running', S is computed under the same statistics as S_bg: a mask
    of 0 everywhere erases nothing, so L_bas is exactly 1 (with batch-statistics S it
    was not, the issue's suspect)."""
    torch.manual_seed(0)
    model = build_localizer(dict(type="bas", backbone=dict(depth=18), bas=dict(erased_bn="running")), 5)[0].train()
    with torch.no_grad():
        model.classifier.weight.abs_()  # positive scores
    model.generator = torch.nn.Conv2d(256, 5, 1)
    torch.nn.init.zeros_(model.generator.weight)
    torch.nn.init.constant_(model.generator.bias, -40.0)  # M = sigmoid(-40) = 0
    x, labels = tiny_batch()
    assert model(x, labels)["bas"].item() == pytest.approx(1.0, abs=1e-5)


def test_background_activation_is_the_l_bas_that_bas_trains_for_each_labelled_class():
    """The erasure check's per-class ratio is training's L_bas: with one class per image the
    forward's `bas` term (eval mode, the same statistics) is their mean; absent classes are NaN."""
    torch.manual_seed(0)
    model = build_localizer(dict(type="bas", backbone=dict(depth=18), bas=dict(erased_bn="running")), 5)[0].eval()
    x = torch.randn(4, 3, 64, 64)
    labels = torch.zeros(4, 5)
    labels[[0, 1, 2, 3], [0, 2, 4, 1]] = 1
    with torch.no_grad():
        ratios = model.background_activation(x, labels)
        trained = model(x, labels)["bas"]
    assert torch.isnan(ratios[labels == 0]).all() and ((ratios[labels == 1] >= 0) & (ratios[labels == 1] <= 1)).all()
    assert ratios[labels == 1].mean().item() == pytest.approx(trained.item(), rel=1e-5)


def test_bas_diagnostics_count_samples_without_a_bas_gradient_and_collapsed_masks():
    from pipeline.models.bas import diagnostics

    fpm = torch.stack([torch.full((4, 4), 0.001), torch.full((4, 4), 0.5), torch.full((4, 4), 0.999),
                       torch.full((4, 4), 0.3)])
    s = torch.tensor([-1.0, 2.0, 2.0, 2.0])  # sample 0: S <= 0
    s_bg = torch.tensor([0.0, 3.0, 1.0, 1.0])  # sample 1: S_bg > S
    d = diagnostics(fpm, s_bg, s)
    assert d["diag_no_bas_gradient"] == pytest.approx(0.5)
    assert d["diag_mask_collapsed"] == pytest.approx(0.5)  # samples 0 and 2
    assert d["diag_mask_saturated"] == pytest.approx(0.5)


def test_irn_recipe_backbone_freezes_statistics_and_early_stages():
    model = build_localizer(dict(type="cam", backbone=dict(depth=18, output_stride=16, frozen_bn=True, frozen_stages=2)), 5)[0]
    model.train()
    bn = model.backbone.layer3[0].bn1
    before = bn.running_mean.clone()
    x, labels = tiny_batch()
    model(x, labels)["soft_margin"].backward()
    assert torch.equal(bn.running_mean, before)  # statistics never move, in training mode too
    assert bn.weight.grad is not None  # the affine part still learns
    assert all(p.grad is None and not p.requires_grad for p in model.backbone.layer2.parameters())
    assert model.backbone.layer3[0].conv1.weight.grad is not None


def test_reference_parity_options_xavier_heads_and_frozen_biases():
    from pipeline.training.optim import build_sgd

    torch.manual_seed(0)
    model = build_localizer(dict(type="bas", backbone=dict(depth=18), head_init="xavier"), 5)[0]
    bound = (6 / (model.generator.weight[0].numel() + model.generator.weight[:, 0].numel())) ** 0.5
    assert model.generator.weight.abs().max() <= bound and model.generator.weight.abs().max() > 0.5 * bound
    optimizer = build_sgd(model, model.heads(), 0.005, 10, 0.0, 1e-4, train_biases=False)
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert all(id(p) not in trained for n, p in model.named_parameters() if n.endswith("bias"))
    assert optimizer.param_groups[0]["momentum"] == 0.0


def test_drs_suppressor_caps_each_channel_at_delta_times_its_maximum():
    from pipeline.models.drs import Suppressor

    x = torch.randn(2, 8, 5, 5)
    fixed = Suppressor(8, delta=0.55)(x)
    peak = x.relu().amax((2, 3), keepdim=True)
    assert torch.allclose(fixed, torch.minimum(x.relu(), 0.55 * peak))
    learned = Suppressor(8, delta=None)
    assert learned.controller.weight.abs().max() < 0.1  # delta starts near sigmoid(0) = 0.5
    out = learned(x)
    assert (out <= peak + 1e-6).all() and (out >= 0).all() and (out < x.relu()).any()


def test_drs_is_the_reference_d1_vgg_at_output_stride_8():
    from pipeline.models.drs import DRSClassifier, Suppressor

    model = DRSClassifier(num_classes=5, delta=None).eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5, 8, 8)
    assert sum(isinstance(m, Suppressor) for m in model.modules()) == 13 + 3  # every ReLU of VGG-16 + 3 extra
    assert not any(isinstance(m, torch.nn.ReLU) for m in model.features)
    model_fixed, _ = build_localizer(dict(type="drs", backbone=dict(weights=None), drs=dict(delta=0.55)), 5)
    assert not any(p.requires_grad for n, p in model_fixed.named_parameters() if "controller" in n)
    assert all(m.delta == 0.55 for m in model_fixed.modules() if isinstance(m, Suppressor))


def test_drs_loss_falls_at_its_reference_learning_rate():
    """Ten steps at DRS's lr 0.001 (heads 10x) on one batch, from random init: the loss falls at every step."""
    from pipeline.training.optim import build_sgd

    torch.manual_seed(0)
    model, weights = build_localizer(dict(type="drs", backbone=dict(weights=None)), 5)
    x, labels = tiny_batch()
    optimizer = build_sgd(model, model.heads(), lr=0.001, head_lr_mult=10, momentum=0.9, weight_decay=5e-4)
    losses = []
    for _ in range(10):
        loss = sum(w * model(x, labels)[k] for k, w in weights.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < losses[0] - 0.05, losses
