"""Class-wise foreground maps for every image of a split.

Multi-scale + flip inference, maps resized to the image, only the image's classes kept.
The CAM baseline's ReLU'd class activation maps (zero floor, no ceiling) are summed and
divided by their maximum; BAS's foreground prediction maps are already probabilities
(sigmoid), so they are averaged: max-normalising them would stretch a map that is low
everywhere into full-range noise (the reference max-normalises them: docs/method.md,
parity table). `fuse_cam` adds a CAM's maps as the reference does: each map
max-normalised (BAS's too), summed, normalised again: 'train_cam_partner' = the
CAM that stage trained in this run, or the folder of a CAM run. One file
per image: `maps/<id>.npz` with `maps` (n, H, W) float16 in [0, 1] and `classes` (n,)
class indices 1..C (zlib-compressed only with `compress`: 23 % less disk for ~36 ms an
image).

Throughput: images of one exact size go through the network together (`batch_size`;
COCO's and VOC's photos come in a few common sizes), so a batched map is the image's own
map (tests/test_localizer_stages.py compares them for every localizer; padding to shared
sizes changed them: bench/export_equivalence.py). bf16 autocast and channels_last on
CUDA; a background thread writes the previous maps. The batches are made from the whole
split before it is shared out, so under torchrun each process does every world_size-th
batch and the files are those of a one-process run. Resumes from the files written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pipeline import distributed
from pipeline.artifacts import MAPS_DIR, CamWeights, ClassMaps, LocalizerWeights, PreparedData, RunFolder, run_id
from pipeline.atomic import BackgroundWriter, save_npz
from pipeline.errors import ConfigError
from pipeline.per_image import PerImage
from pipeline.precision import autocast, check_amp
from pipeline.runner import StageContext, StageResult
from pipeline.stage import Input, register_stage

@dataclasses.dataclass(frozen=True)
class ExportSettings:
    split: str = "train"
    scales: tuple[float, ...] = (1.0, 0.5, 1.5, 2.0)
    flip: bool = True
    fuse_cam: str | None = None  # None, the stage of this run that trains the CAM, or a CAM run folder
    batch_size: int = 8  # images of one exact size per forward
    amp: str | None = "bf16"  # CUDA only: autocast dtype ('bf16', 'fp16') or None for fp32; the CPU runs fp32
    compress: bool = False  # zlib the map files (same values, less disk, slower)
    num_workers: int = 2  # DataLoader workers decoding images while the model runs (0: in the loop)

    def __post_init__(self) -> None:
        check_amp(self.amp, "export_maps.amp")
        if self.batch_size < 1:
            raise ConfigError(f"export_maps.batch_size must be at least 1, got {self.batch_size}")


def _outside_cam(fuse: str | None) -> Path | None:
    """The localizer folder of the run folder `fuse` (`export_maps.fuse_cam=<folder>`), if any."""
    if fuse is None or not Path(fuse).is_dir():
        return None
    run = RunFolder(Path(fuse))
    return run.folder(LocalizerWeights) if run.has(LocalizerWeights) else None


def _external_cam_run(cfg) -> dict:
    """A CAM run folder fused from outside: its model's run id, so that retraining it makes the maps stale."""
    fuse = (cfg.get("export_maps") or {}).get("fuse_cam")
    folder = _outside_cam(fuse)
    return {} if folder is None else {"fuse_cam_run": str(fuse), "run_id": run_id(folder)}


@register_stage(
    step=5, produces=ClassMaps, settings=ExportSettings,
    consumes=(PreparedData, LocalizerWeights, Input(CamWeights, select="export_maps.fuse_cam", outside=True)),
    external=_external_cam_run, execution_keys=("export_maps.num_workers", "export_maps.compress"),
    description="class-wise foreground maps, multi-scale + flip, one `.npz` per photo, batched by exact size",
    distributed=True)
def export_maps(ctx: StageContext) -> StageResult:
    import torch  # here, not at the top: the CLI plans runs without loading torch
    from torch.utils.data import DataLoader

    from pipeline.maps import ImageBatches, batch_class_maps, fuse_maps, size_batches
    from pipeline.models import load_trained_localizer

    settings = ctx.settings()
    dataset = ctx.input(PreparedData).load()
    device = distributed.device()
    cuda = device.type == "cuda"
    model, method = load_trained_localizer(ctx.input(LocalizerWeights).model_path, device)
    models = [model]
    cam_model, fused_from = _cam_model_to_fuse(ctx, settings.fuse_cam, dataset.num_classes, device)
    models += [cam_model] if cam_model is not None else []
    if cuda:
        models = [m.to(memory_format=torch.channels_last) for m in models]

    ids = dataset.split(settings.split)
    out = ctx.out_dir / MAPS_DIR
    every_batch = size_batches(dataset, ids, settings.batch_size)
    work = PerImage("export_maps", every_batch, done=lambda batch: all((out / f"{i}.npz").is_file() for i in batch))
    todo = work.todo
    loader = DataLoader(ImageBatches(dataset, todo), batch_size=None, num_workers=settings.num_workers,
                        pin_memory=cuda)
    with BackgroundWriter(threads=1) as writer:
        for batch_ids, images in work.progress(loader, "maps", total=len(todo), count=lambda item: len(item[0])):
            images = images.to(device, non_blocking=True,
                               memory_format=torch.channels_last if cuda else torch.contiguous_format)
            classes = [dataset.labels[i] for i in batch_ids]
            with autocast(device, settings.amp):
                maps = [batch_class_maps(m, images, classes, settings.scales, settings.flip) for m in models]
            fused = [maps[0][k] if len(maps) == 1 else fuse_maps(maps[0][k], maps[1][k]) for k in range(len(batch_ids))]
            for image_id, image_maps, image_classes in zip(batch_ids, to_host(fused), classes):
                if not (out / f"{image_id}.npz").is_file():  # a resumed batch keeps the files it has
                    writer.submit(save_npz, out / f"{image_id}.npz", settings.compress, maps=image_maps,
                                  classes=np.asarray(image_classes, dtype=np.int16))
    mine = sum(len(b) for b in work.mine)
    record, reused = work.record(items_here=mine), mine - sum(len(b) for b in todo)
    reused = work.gather(reused)
    distributed.barrier()  # every shard written before rank 0 counts and writes the manifest

    written = sum((out / f"{i}.npz").is_file() for i in ids)
    return StageResult(
        artifact=ClassMaps(ctx.out_dir, split=settings.split, method=method),
        artifacts={"maps": written, "images": len(ids), "reused": reused},
        info={"split": settings.split, "method": method, "maps_dir": MAPS_DIR, "fused_with_cam": fused_from,
              "format": "npz per image: maps (n, H, W) float16 in [0, 1], classes (n,) indices 1..C",
              "precision": settings.amp if cuda and settings.amp else "fp32", **record,
              **_shapes_record(every_batch, settings)},
    )


def to_host(maps: list[torch.Tensor]) -> list[np.ndarray]:
    """A batch's maps as float16 arrays, in one device-to-host copy (one sync a batch, not one an image)."""
    import torch

    flat = torch.cat([m.reshape(-1) for m in maps]).half().cpu().numpy()
    ends = np.cumsum([m.numel() for m in maps])[:-1]
    return [part.reshape(m.shape) for part, m in zip(np.split(flat, ends), maps)]


def _shapes_record(batches: list[list[str]], settings: ExportSettings) -> dict:
    """How many batches have each size: what batching efficiency depends on."""
    sizes = np.bincount([len(b) for b in batches]) if batches else np.zeros(1, dtype=np.int64)
    return {"batch_sizes": {str(n): int(k) for n, k in enumerate(sizes) if k},
            "images_per_forward": "batch x 2 (flips)" if settings.flip else "batch"}


def _cam_model_to_fuse(ctx: StageContext, fuse: str | None, num_classes: int, device):
    """The CAM to fuse: this run's (the stage `fuse` names) or the localizer of the run folder `fuse`."""
    if fuse is None:
        return None, None
    if not ctx.has_input("cam") and not Path(fuse).is_dir():
        raise ConfigError(f"export_maps.fuse_cam={fuse!r} is neither a stage of this run that trains a CAM "
                          f"({', '.join(ctx.plan.producers('cam')) or 'none'}) nor a run folder")
    outside = None if ctx.has_input("cam") else _outside_cam(fuse)
    if not ctx.has_input("cam") and outside is None:
        raise ConfigError(f"export_maps.fuse_cam={fuse!r}: no finished localizer in that run folder; run the CAM "
                          "config first")
    cam = ctx.input(CamWeights) if outside is None else LocalizerWeights.read(outside)
    path, folder = cam.model_path, cam.folder
    if not path.is_file():
        raise ConfigError(f"export_maps.fuse_cam={fuse!r}: {path} is missing; re-run the CAM's training")
    from pipeline.models import load_trained_localizer
    from pipeline.models.cam import CAMClassifier

    model, method = load_trained_localizer(path, device)
    if not isinstance(model, CAMClassifier) or model.num_classes != num_classes:
        raise ConfigError(f"export_maps.fuse_cam: {path} is a '{method}' model with "
                          f"{model.num_classes} classes, expected a CAM baseline with {num_classes}")
    return model, {"run": str(folder.parent), "stage": folder.name, "run_id": run_id(folder)}

