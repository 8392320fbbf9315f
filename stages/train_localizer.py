"""Stage 2 of 12: train the localizer (BAS, the CAM baseline, DRS, ...) on image-level labels.

The model is the plug-in `localizer.type` names (`pipeline/models/__init__.py`); the loop
(DDP under torchrun, checkpoints, exact resume) and the saved `model.pth` are
`pipeline.training.loop`'s.
"""

from __future__ import annotations

from pipeline.config import section_to_dataclass
from pipeline.runner import StageContext, StageResult
from pipeline.training.loop import TrainSettings, train_and_save


def train_localizer(ctx: StageContext) -> StageResult:
    settings = section_to_dataclass(TrainSettings, ctx.section("train_localizer"), "train_localizer")
    return StageResult(**train_and_save(ctx.upstream_dir("prepare"), ctx.out_dir, "train_localizer", settings,
                                        ctx.section("localizer")))
