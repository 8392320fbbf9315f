"""Stage 2: train the localizer (BAS, or the CAM baseline) on image-level labels.

The loop (DDP under torchrun, checkpoints, exact resume) and the saved `model.pth` are
`pipeline.training.loop`'s; this stage picks the configured model.
"""

from __future__ import annotations

from pipeline.config import section_to_dataclass
from pipeline.models import loss_weights
from pipeline.runner import StageContext, StageResult
from pipeline.training.loop import TrainSettings, train_and_save


def train_localizer(ctx: StageContext) -> StageResult:
    settings = section_to_dataclass(TrainSettings, ctx.section("train_localizer"), "train_localizer")
    localizer = ctx.section("localizer")
    options = {"head_init": localizer.get("head_init", "default")}
    if localizer["method"] == "bas":
        options["erased_bn"] = localizer["bas_erased_bn"]
    return train_and_save(ctx, "train_localizer", settings, localizer["method"], localizer["backbone"],
                          loss_weights(localizer), **options)
