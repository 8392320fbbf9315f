"""Stage 3: class-wise foreground maps for every image of a split.

Multi-scale + flip inference, maps resized to the image, only the image's classes kept.
The CAM baseline's ReLU'd class activation maps (zero floor, no ceiling) are summed and
divided by their maximum; BAS's foreground prediction maps are already probabilities
(sigmoid), so they are averaged: max-normalising them would stretch a map that is low
everywhere into full-range noise. `fuse_cam` adds a CAM's maps (each
map max-normalised, summed, normalised again, as the reference does): 'partner' = the
CAM the train_cam_partner stage trained in this run, or the folder of a CAM run. One compressed file per image:
`maps/<id>.npz` with `maps` (n, H, W) float16 in [0, 1] and `classes` (n,) class
indices 1..C. Sharded across processes under torchrun; resumes from files written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from pipeline import distributed
from pipeline.artifacts import MAPS_DIR, MODEL_FILE
from pipeline.atomic import save_npz
from pipeline.config import section_to_dataclass
from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import ConfigError
from pipeline.log import get_logger, progress
from pipeline.maps import ImageTensors, class_maps, normalize_maps
from pipeline.models import load_trained_localizer
from pipeline.models.cam import CAMClassifier
from pipeline.runner import StageContext, StageResult, read_manifest

@dataclasses.dataclass(frozen=True)
class ExportSettings:
    split: str = "train"
    scales: tuple[float, ...] = (1.0, 0.5, 1.5, 2.0)
    flip: bool = True
    fuse_cam: str | None = None  # None, 'partner' (this run's train_cam_partner), or a CAM run folder
    num_workers: int = 2  # DataLoader workers decoding images while the model runs (0: in the loop)


def export_maps(ctx: StageContext) -> StageResult:
    settings = section_to_dataclass(ExportSettings, ctx.section("export_maps"), "export_maps")
    dataset = PreparedDataset.load(ctx.upstream_dir("prepare"))
    device = distributed.device()
    model, method = load_trained_localizer(ctx.upstream_dir("train_localizer") / MODEL_FILE, device)
    cam_model, fused_from = _cam_model_to_fuse(ctx, settings.fuse_cam, dataset.num_classes, device)

    ids = dataset.split(settings.split)
    out = ctx.out_dir / MAPS_DIR
    shard = ids[distributed.rank()::distributed.world_size()]
    todo = [i for i in shard if not (out / f"{i}.npz").is_file()]
    if len(todo) < len(shard):
        get_logger().info("export_maps: %d of %d maps already written, resuming", len(shard) - len(todo), len(shard))
    images = DataLoader(ImageTensors(dataset, todo), batch_size=None, num_workers=settings.num_workers,
                        pin_memory=device.type == "cuda")
    for image_id, image in progress(images, "export_maps", total=len(todo)):
        image = image.to(device, non_blocking=True)
        classes = dataset.labels[image_id]
        maps = class_maps(model, image, classes, settings.scales, settings.flip)
        if cam_model is not None:
            maps = normalize_maps(maps + class_maps(cam_model, image, classes, settings.scales, settings.flip))
        save_npz(out / f"{image_id}.npz", maps=maps.cpu().numpy().astype(np.float16),
                 classes=np.asarray(classes, dtype=np.int16))
    distributed.barrier()  # every shard written before rank 0 counts and writes the manifest

    written = sum((out / f"{i}.npz").is_file() for i in ids)
    return StageResult(
        artifacts={"maps": written, "images": len(ids), "reused": len(shard) - len(todo)},
        info={"split": settings.split, "method": method, "maps_dir": MAPS_DIR, "fused_with_cam": fused_from,
              "format": "npz per image: maps (n, H, W) float16 in [0, 1], classes (n,) indices 1..C"},
    )


def _cam_model_to_fuse(ctx: StageContext, fuse: str | None, num_classes: int, device):
    if fuse is None:
        return None, None
    run_dir = ctx.run_dir if fuse == "partner" else Path(fuse)
    stage = "train_cam_partner" if fuse == "partner" else "train_localizer"
    path = run_dir / stage / MODEL_FILE
    manifest = read_manifest(path.parent)
    if manifest is None or not path.is_file():
        raise ConfigError(f"export_maps.fuse_cam={fuse!r}: no finished {stage} in {run_dir} (looked for {path} "
                          "and its manifest.json); run the CAM config first")
    model, method = load_trained_localizer(path, device)
    if not isinstance(model, CAMClassifier) or model.num_classes != num_classes:
        raise ConfigError(f"export_maps.fuse_cam: {path} is a '{method}' model with "
                          f"{model.num_classes} classes, expected a CAM baseline with {num_classes}")
    return model, {"run": str(run_dir), "stage": stage, "run_id": manifest["run_id"]}
