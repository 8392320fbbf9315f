"""Train the localizer (BAS, the CAM baseline, DRS, ...) on image-level labels.

The model is the plug-in `localizer.type` names (`pipeline/models/__init__.py`); the loop
(DDP under torchrun, checkpoints, exact resume) and the saved `model.pth` are
`pipeline.training.loop`'s.
"""

from __future__ import annotations

from pipeline.artifacts import LocalizerWeights, PreparedData
from pipeline.runner import StageContext, StageResult
from pipeline.stage import register_stage
from pipeline.training.settings import TrainSettings


@register_stage(
    step=2, consumes=(PreparedData,), produces=LocalizerWeights,
    settings={"localizer": None, "train_localizer": TrainSettings},  # `localizer`: typed by its plug-in
    description="BAS (or the CAM, or DRS) on image-level labels; DDP under torchrun",
    distributed=True, execution_keys=("train_localizer.num_workers",))
def train_localizer(ctx: StageContext) -> StageResult:
    from pipeline.training.loop import train_and_save  # torch: only when the stage runs

    settings = ctx.settings()
    localizer = ctx.section("localizer")
    return StageResult(artifact=LocalizerWeights(ctx.out_dir, method=localizer["type"], split=settings.split),
                       **train_and_save(ctx.input(PreparedData), ctx.out_dir, "train_localizer", settings, localizer))
