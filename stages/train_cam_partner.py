"""Stage 2b: the CAM whose maps BAS's are fused with at export (the reference always fuses).

On only when `export_maps.fuse_cam='partner'`. The paper configs train it with IRN's
recipe (docs/method.md): ResNet-50, BatchNorm statistics frozen, stem + layers 1-2
frozen, lr 0.1 (classifier 1.0), 5 epochs, long side 320-640, crop 512. Same loop,
checkpoints and exact resume as `train_localizer`; saved the same way (`model.pth`).
"""

from __future__ import annotations

import torch

from pipeline import distributed
from pipeline.config import section_to_dataclass
from pipeline.datasets.prepared import PreparedDataset
from pipeline.models import build_localizer
from pipeline.runner import StageContext, StageResult
from pipeline.training.checkpoint import save_checkpoint
from pipeline.training.loop import TrainSettings, train

MODEL_FILE = "model.pth"


def train_cam_partner(ctx: StageContext) -> StageResult:
    settings = section_to_dataclass(TrainSettings, ctx.section("train_cam_partner"), "train_cam_partner")
    backbone = ctx.section("cam_partner")["backbone"]
    dataset = PreparedDataset.load(ctx.upstream_dir("prepare"))
    ids = [i for i in dataset.split(settings.split) if dataset.labels[i]]
    torch.manual_seed(settings.seed)
    model = build_localizer("cam", dataset.num_classes, backbone)
    trained = train(model, dataset, ids, settings, {"soft_margin": 1.0}, ctx.out_dir, "train_cam_partner")
    if distributed.is_main():
        save_checkpoint(ctx.out_dir / MODEL_FILE, state_dict=model.state_dict(), method="cam",
                        num_classes=dataset.num_classes, backbone=dict(backbone))
    return StageResult(
        artifacts={"images": len(ids), "epochs": settings.epochs, "steps": trained["steps"],
                   "processes": trained["processes"]},
        metrics={"final_loss": trained["history"][-1]["loss"], "history": trained["history"],
                 "steps_this_attempt_per_rank": trained["steps_this_attempt_per_rank"]},
        info={"model": MODEL_FILE, "method": "cam", "device": trained["device"]},
    )
