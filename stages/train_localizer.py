"""Stage 2: train the localizer (BAS, or the CAM baseline) on image-level labels.

The loop (DDP under torchrun, checkpoints, exact resume) is `pipeline.training.loop`;
this stage builds the configured model and saves it as `model.pth`.
"""

from __future__ import annotations

import torch

from pipeline import distributed
from pipeline.config import section_to_dataclass
from pipeline.datasets.prepared import PreparedDataset
from pipeline.log import get_logger
from pipeline.models import build_localizer, loss_weights
from pipeline.runner import StageContext, StageResult
from pipeline.training.checkpoint import save_checkpoint
from pipeline.training.loop import TrainSettings, train

MODEL_FILE = "model.pth"


def train_localizer(ctx: StageContext) -> StageResult:
    settings = section_to_dataclass(TrainSettings, ctx.section("train_localizer"), "train_localizer")
    localizer_cfg = ctx.section("localizer")
    log = get_logger()
    dataset = PreparedDataset.load(ctx.upstream_dir("prepare"))
    ids = dataset.split(settings.split)
    usable = [i for i in ids if dataset.labels[i]]
    if len(usable) < len(ids):
        log.warning("train_localizer: %d of %d images have no class label and are skipped "
                    "(BAS samples one positive class per image)", len(ids) - len(usable), len(ids))
    if localizer_cfg["backbone"].get("weights") is None:
        log.warning("train_localizer: the backbone starts from RANDOM weights (localizer.backbone.weights=None); "
                    "real data needs ImageNet weights ('IMAGENET1K_V1' or a local .pth)")
    torch.manual_seed(settings.seed)  # the heads' init; every later draw comes from pipeline.training.randomness
    options = {"head_init": localizer_cfg.get("head_init", "default")}
    if localizer_cfg["method"] == "bas":
        options["erased_bn"] = localizer_cfg["bas_erased_bn"]
    model = build_localizer(localizer_cfg["method"], dataset.num_classes, localizer_cfg["backbone"], **options)
    trained = train(model, dataset, usable, settings, loss_weights(localizer_cfg), ctx.out_dir, "train_localizer")
    if distributed.is_main():
        save_checkpoint(ctx.out_dir / MODEL_FILE, state_dict=model.state_dict(), method=localizer_cfg["method"],
                        num_classes=dataset.num_classes, backbone=dict(localizer_cfg["backbone"]))
    history = trained["history"]
    return StageResult(
        artifacts={"images": len(usable), "skipped_unlabelled": len(ids) - len(usable), "epochs": settings.epochs,
                   "steps": trained["steps"], "processes": trained["processes"]},
        metrics={"final_loss": history[-1]["loss"], "history": history,
                 "steps_this_attempt_per_rank": trained["steps_this_attempt_per_rank"]},
        info={"model": MODEL_FILE, "method": localizer_cfg["method"], "device": trained["device"]},
    )
