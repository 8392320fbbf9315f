"""The CAM whose maps BAS's are fused with at export (the reference always fuses).

On only when `export_maps.fuse_cam='train_cam_partner'`. The paper configs train it with IRN's
recipe (docs/method.md): ResNet-50, BatchNorm statistics frozen, stem + layers 1-2
frozen, lr 0.1 (classifier 1.0), 5 epochs, long side 320-640, crop 512. Same loop,
checkpoints, exact resume and `model.pth` as `train_localizer`.
"""

from __future__ import annotations

from pipeline.artifacts import CamWeights, PreparedData
from pipeline.runner import StageContext, StageResult
from pipeline.stage import register_stage
from pipeline.training.settings import TrainSettings


@register_stage(
    step=4, consumes=(PreparedData,), produces=CamWeights, on_demand=True,
    settings={"cam_partner": None, "train_cam_partner": TrainSettings},
    description="the CAM the reference fuses with BAS's maps; on when `export_maps.fuse_cam='train_cam_partner'`",
    distributed=True, execution_keys=("train_cam_partner.num_workers",))
def train_cam_partner(ctx: StageContext) -> StageResult:
    from pipeline.training.loop import train_and_save  # torch: only when the stage runs

    settings = ctx.settings()
    return StageResult(artifact=CamWeights(ctx.out_dir, method="cam", split=settings.split),
                       **train_and_save(ctx.input(PreparedData), ctx.out_dir, "train_cam_partner", settings,
                                        {"type": "cam", "backbone": ctx.section("cam_partner")["backbone"]}))
