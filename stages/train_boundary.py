"""Train IRN's class-boundary branch on the relations the pseudo-masks give.

Two pixels within `boundary_net.radius` (on the stride-4 grid) of one crop are a pair:
both background or both the same class -> related, different classes -> unrelated,
either uncertain (255) -> no label. With `refine_masks.confident` on (IRN's
confident/uncertain split, as the random-walk configs set), the pseudo-masks are IRN's
relation labels. IRN's loss, heads only over a frozen ImageNet backbone (or the whole
net from random init), in the shared loop: DDP, AMP, checkpoints, exact resume.
"""

from __future__ import annotations

import dataclasses

from pipeline import distributed
from pipeline.artifacts import DEFAULT_REFINEMENT, MASKS_SUBDIR, BoundaryWeights, LocalizerWeights, PreparedData, PseudoMasks
from pipeline.errors import ConfigError
from pipeline.log import get_logger
from pipeline.runner import StageContext, StageResult
from pipeline.stage import Input, register_stage
from pipeline.training.settings import TrainSettings


@dataclasses.dataclass(frozen=True)
class BoundaryNetSettings:
    # A ResNet as localizer.backbone (weights='localizer': the trained localizer's), or
    # dict(type='timm', name='tf_efficientnet_lite0', weights='packaged') (packaged ImageNet weights)
    backbone: dict
    radius: int = 10  # pairs up to this many stride-4 cells apart (IRN: 10)
    train_backbone: bool = False  # IRN: False (ImageNet features, heads trained)
    # IRN: (bg_pos / 2 + fg_pos / 2 + neg) / 2
    loss_weights: dict = dataclasses.field(default_factory=lambda: {"bg_pos": 0.25, "fg_pos": 0.25, "neg": 0.5})
    pseudo_masks: str = DEFAULT_REFINEMENT  # the pseudo-mask set whose relations it learns


@register_stage(
    step=8, consumes=(PreparedData, LocalizerWeights, Input(PseudoMasks, select="boundary_net.pseudo_masks")),
    produces=BoundaryWeights, on_demand=True,
    settings={"boundary_net": BoundaryNetSettings, "train_boundary": TrainSettings},
    description="IRN's class-boundary branch on the CRF's confident/uncertain masks",
    distributed=True, execution_keys=("train_boundary.num_workers",))
def train_boundary(ctx: StageContext) -> StageResult:
    import torch  # here, not at the top: the CLI plans runs without loading torch

    from pipeline.models.boundary import BoundaryNet, build_boundary_levels
    from pipeline.training.checkpoint import save_checkpoint
    from pipeline.training.data import AugmentedRelationCrops
    from pipeline.training.loop import train

    net = ctx.settings("boundary_net")
    settings = ctx.settings()
    if settings.crop % AugmentedRelationCrops.STRIDE:
        raise ConfigError(f"train_boundary.crop={settings.crop}: must be a multiple of 4 (the boundary map's stride)")
    if set(net.loss_weights) != {"bg_pos", "fg_pos", "neg"}:
        raise ConfigError(f"boundary_net.loss_weights must name bg_pos, fg_pos and neg, got {sorted(net.loss_weights)}")
    log = get_logger()
    dataset = ctx.input(PreparedData).load()
    masks = ctx.input(PseudoMasks)
    pseudo, card = masks.root, masks.card()
    ids = (pseudo / card["list"]).read_text().split()
    if card["ignore_fraction"] == 0:
        log.warning("train_boundary: the pseudo-masks mark no pixel uncertain (255): every pair near an object's "
                    "edge gets a label, right or wrong. IRN's recipe: refine_masks.confident.enabled=True")
    if net.backbone.get("weights") is None and not net.train_backbone:
        log.warning("train_boundary: a frozen RANDOM backbone (boundary_net.backbone.weights=None, "
                    "train_backbone=False): the heads see random features")
    torch.manual_seed(settings.seed)
    from_localizer = net.backbone.get("weights") == "localizer"
    model = BoundaryNet(build_boundary_levels(net.backbone, weights_override=None if from_localizer else "keep"),
                        net.radius, net.train_backbone)
    if from_localizer:
        _load_localizer_backbone(model, ctx.input(LocalizerWeights).model_path)
    images = AugmentedRelationCrops(dataset, ids, pseudo / MASKS_SUBDIR, settings.resize_long, settings.crop,
                                    settings.flip)
    trained = train(model, images, settings, dict(net.loss_weights), ctx.out_dir, "train_boundary")
    if distributed.is_main():
        save_checkpoint(BoundaryWeights(ctx.out_dir).model_path, state_dict=model.state_dict(), backbone=dict(net.backbone),
                        radius=net.radius)
    history = trained["history"]
    return StageResult(
        artifact=BoundaryWeights(ctx.out_dir),
        artifacts={"images": len(ids), "epochs": settings.epochs, "steps": trained["steps"],
                   "processes": trained["processes"]},
        metrics={"final_loss": history[-1]["loss"], "history": history,
                 "steps_this_attempt_per_rank": trained["steps_this_attempt_per_rank"]},
        info={"model": BoundaryWeights(ctx.out_dir).model_path.name, "labels_ignore_fraction": card["ignore_fraction"], "device": trained["device"],
              "throughput": trained["throughput"]},
    )


def _load_localizer_backbone(model, path) -> None:
    """The trained localizer's backbone as the boundary net's (where no ImageNet weights
    are at hand, the only features trained on something else)."""
    from pipeline.models import load_trained_localizer

    localizer, _ = load_trained_localizer(path)
    borrowed = localizer.lendable_resnet()
    if borrowed is None:
        raise ConfigError(f"boundary_net.backbone.weights='localizer': the localizer in {path} has no ResNet "
                          "backbone to lend (its lendable_resnet() is None); give the boundary net its own weights")
    try:
        model.backbone.resnet.load_state_dict(borrowed.state_dict())
    except (AttributeError, RuntimeError) as err:
        raise ConfigError(f"boundary_net.backbone.weights='localizer': the localizer in {path} has another "
                          f"backbone (boundary_net.backbone must match localizer.backbone): {err}") from None
