"""Turn a data source into the prepared data set later stages read.

`dataset.type` names a registered data set (`pipeline.datasets.DATASETS`: 'synthetic',
'voc12', 'coco' / 'coco14', 'folder', or one a config's `custom_imports` registers).
Every type ends in the same format (pipeline/datasets/prepared.py), so later stages
never ask which it was. A class without a single image in a split is warned about by
name: the localizer cannot learn it from that split, nor can a score measure it.
"""

from __future__ import annotations

import numpy as np

from pipeline.artifacts import PreparedData
from pipeline.datasets import build_data_source
from pipeline.datasets.prepared import PreparedDataset
from pipeline.log import get_logger
from pipeline.runner import StageContext, StageResult
from pipeline.stage import register_stage


@register_stage(
    step=1, produces=PreparedData, settings={"dataset": None},  # typed by the data-set plug-in
    description="lists, image-level labels, GT masks: synthetic, VOC 2012 (+ SBD), COCO 2014 / 2017, your own folder, or a plug-in",
    execution_keys=("dataset.n_jobs",))
def prepare(ctx: StageContext) -> StageResult:
    report = build_data_source(ctx.section("dataset")).prepare(ctx.out_dir)
    absent = classes_without_images(PreparedDataset.load(ctx.out_dir))
    for split, names in absent.items():
        get_logger().warning("prepare: %d class(es) have no image in split '%s': %s", len(names), split,
                             ", ".join(names))
    return StageResult(artifact=PreparedData(ctx.out_dir, skipped=report["info"].get("skipped")),
                       artifacts=report["artifacts"], info={**report["info"], "classes_without_images": absent})


def classes_without_images(dataset: PreparedDataset) -> dict[str, list[str]]:
    """{split: names of the foreground classes no image of the split is labelled with}."""
    absent = {}
    for split in dataset.splits:
        counts = np.bincount([c for i in dataset.split(split) for c in dataset.labels[i]],
                             minlength=len(dataset.classes))
        names = [dataset.classes[c] for c in range(1, len(dataset.classes)) if counts[c] == 0]
        if names:
            absent[split] = names
    return absent
