"""Stage 1: turn a data source into the prepared data set later stages read.

`dataset.type` names a registered data set (`pipeline.datasets.DATASETS`: 'synthetic',
'voc12', 'coco' / 'coco14', 'folder', or one a config's `custom_imports` registers).
Every type ends in the same format (pipeline/datasets/prepared.py), so later stages
never ask which it was.
"""

from __future__ import annotations

from pipeline.datasets import build_data_source
from pipeline.runner import StageContext, StageResult


def prepare(ctx: StageContext) -> StageResult:
    report = build_data_source(ctx.section("dataset")).prepare(ctx.out_dir)
    return StageResult(artifacts=report["artifacts"], info=report["info"])
