"""Train the final segmenter (mmseg DeepLab) on the pseudo-mask data set.

The stage writes an ordinary mmseg config (`segmenter_config.py`: train data = the
pseudo-masks, val data = the real GT, never pseudo-masks) and trains it with
mmengine's Runner: iteration-based loop, poly lr, checkpoints in `work/`, resume from
the last one after an interruption. Under torchrun, mmengine's 'pytorch' launcher
joins the process group the pipeline opened (SyncBN on CUDA). The final weights go to
`model.pth` (a plain state dict) for evaluate_segmenter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import distributed
from pipeline.artifacts import CARD, MMSEG_CONFIG, LocalizerWeights, PreparedData, PseudoMasks, Segmenter
from pipeline.atomic import atomic_path, write_lines
from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import PipelineError
from pipeline.log import get_logger
from pipeline.runner import StageContext, StageResult
from pipeline.stage import Input, register_stage
from pipeline.segmenter.mmseg_config import SegmenterData, SegmenterModel, SegmenterSchedule, build_mmseg_config

BACKBONE_INIT = "backbone_init.pth"
WORK_DIR = "work"  # mmengine's checkpoints and logs
VAL_LIST = "val_with_gt.txt"
TRAIN_LIST = "train_pseudo_masks.txt"  # the pseudo-masks it trains on


@register_stage(
    step=10, consumes=(PreparedData, Input(PseudoMasks, select="train_segmenter.pseudo_masks"), LocalizerWeights),
    produces=Segmenter, settings={"segmenter": SegmenterModel, "train_segmenter": SegmenterSchedule},
    description="DeepLabV3+ through mmsegmentation on the pseudo-masks (`train_segmenter.pseudo_masks` names the set)",
    distributed=True,
    execution_keys=("train_segmenter.num_workers", "train_segmenter.log_interval",
                    "train_segmenter.checkpoint_interval"))
def train_segmenter(ctx: StageContext) -> StageResult:
    from pipeline.segmenter import mmcv_compat  # here, not at the top: the CLI plans runs without loading torch
    from pipeline.segmenter.checkpoints import mmengine_checkpoint_globals
    from pipeline.segmenter.throughput import ChannelsLastRunner

    mmcv_compat.install()
    model = ctx.settings("segmenter")
    schedule = ctx.settings()
    val_split = schedule.val_split
    dataset = ctx.input(PreparedData).load()
    masks = ctx.input(PseudoMasks)  # the set train_segmenter.pseudo_masks names
    pseudo = masks.root
    if not (pseudo / CARD).is_file():
        raise PipelineError(f"{pseudo} has no {CARD}: the stage that made it did not finish; re-run it")
    card = masks.card()
    trained = Segmenter(ctx.out_dir, train_split=card["split"], base_scale=tuple(schedule.scale))

    val_with_gt = _validation_ids(dataset, val_split)
    data = _segmenter_data(card, pseudo, dataset, ctx.out_dir, bool(val_with_gt))
    init = None if model.weights is None else (ctx.out_dir / BACKBONE_INIT).resolve()
    train_ids = _training_ids(pseudo / card["list"], card, schedule.drop_lowest_quality)
    _write_inputs(ctx.out_dir, train_ids, val_with_gt, model, init, ctx.input(LocalizerWeights).model_path)
    cfg = _mmseg_config(ctx.out_dir, model, schedule, data, init)
    get_logger().info("train_segmenter: %s %s, %d iterations, batch %d, on %d pseudo-masks; mmseg config %s",
                      "DeepLabV3+" if model.head == "deeplabv3plus" else "DeepLabV3",
                      model.timm_name if model.backbone == "timm" else f"ResNet-{model.depth}",
                      schedule.iters, schedule.batch_size, len(train_ids), trained.mmseg_config)

    with mmengine_checkpoint_globals():  # resume loads mmengine's own checkpoints
        runner = ChannelsLastRunner.from_cfg(cfg)
        runner.train()

    losses = _loss_history(runner)
    if not np.all(np.isfinite(losses)):
        raise PipelineError("train_segmenter: the loss became NaN/inf; lower train_segmenter.lr")
    if distributed.is_main():
        _save_weights(runner, trained.model_path, {"classes": card["classes"], "iters": schedule.iters})
    window = max(1, min(len(losses) // 5, 50))
    return StageResult(
        artifact=trained,
        artifacts={"iterations": schedule.iters, "train_images": len(train_ids),
                   "left_out_low_quality": card["counts"]["images"] - len(train_ids), "val_images": len(val_with_gt)},
        metrics={"loss_start": float(np.mean(losses[:window])), "loss_end": float(np.mean(losses[-window:]))},
        info={"mmseg_config": MMSEG_CONFIG, "model": trained.model_path.name, "backbone_init": str(model.weights),
              "val_split": val_split, "train_split": card["split"], "base_scale": list(schedule.scale),
              "world_size": distributed.world_size(),
              "norm": cfg.model.decode_head.norm_cfg.type, "throughput": _iteration_rate(runner, schedule)},
    )


def _write_inputs(out_dir: Path, train_ids: list[str], val_with_gt: list[str], model: SegmenterModel,
                  init: Path | None, localizer: Path) -> None:
    """The training and validation lists, and the backbone's initial weights (rank 0)."""
    from pipeline.segmenter.weights import write_backbone_init

    if distributed.is_main():
        write_lines(out_dir / TRAIN_LIST, train_ids)
        if val_with_gt:
            write_lines(out_dir / VAL_LIST, val_with_gt)
        if init is not None and not init.is_file():
            write_backbone_init(model, init, localizer)
    distributed.barrier()
    if init is None:
        log = get_logger()
        log.warning("!" * 78)
        log.warning("train_segmenter: the backbone starts from RANDOM INIT (segmenter.weights=None, "
                    "allowed by segmenter.allow_random_init). Expect far lower mIoU than with ImageNet weights.")
        log.warning("!" * 78)


def _mmseg_config(out_dir: Path, model: SegmenterModel, schedule: SegmenterSchedule, data: SegmenterData,
                  init: Path | None):
    """The mmseg config the runner trains with, also written to `segmenter_config.py`."""
    import torch
    from mmengine.config import Config

    import pipeline.segmenter.hooks  # noqa: F401  (registers the config's custom hook)

    cfg = Config(build_mmseg_config(model, schedule, data, work_dir=(out_dir / WORK_DIR).resolve(),
                                    backbone_checkpoint=init, world_size=distributed.world_size(),
                                    cuda=torch.cuda.is_available()))
    if distributed.is_main():
        with atomic_path(out_dir / MMSEG_CONFIG) as tmp:
            cfg.dump(str(tmp))
    return cfg


def _segmenter_data(card: dict, pseudo: Path, dataset: PreparedDataset, out_dir: Path, val: bool) -> SegmenterData:
    """Train on the pseudo-mask set (its own images and masks), validate on the data set's GT."""
    return SegmenterData(
        classes=card["classes"], palette=card["palette"],
        train_images=(pseudo / card["images_dir"]).resolve(), train_masks=(pseudo / card["masks_dir"]).resolve(),
        train_list=(out_dir / TRAIN_LIST).resolve(),
        val_images=dataset.image_dir.resolve() if val else None, val_masks=dataset.mask_dir.resolve() if val else None,
        val_list=(out_dir / VAL_LIST).resolve() if val else None,
        image_suffix=dataset.image_suffix, ignore_index=dataset.ignore_index)


def _save_weights(runner, path: Path, meta: dict) -> None:
    """The trained segmentor's plain state dict (DDP's wrapper taken off), atomically."""
    import torch

    net = runner.model.module if hasattr(runner.model, "module") else runner.model
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": meta}, tmp)


def _validation_ids(dataset: PreparedDataset, val_split: str) -> list[str]:
    """The validation split's images with a GT mask (never pseudo-masks); the others, counted."""
    log = get_logger()
    if val_split not in dataset.splits:
        log.warning("train_segmenter: the data set has no split '%s' (train_segmenter.val_split); the mmseg "
                    "config gets no validation part", val_split)
        return []
    val_ids = dataset.split(val_split)
    val_with_gt = [i for i in val_ids if dataset.mask_path(i) is not None]
    if len(val_with_gt) < len(val_ids):
        log.warning("train_segmenter: %d of %d '%s' images have no GT mask and are left out of validation",
                    len(val_ids) - len(val_with_gt), len(val_ids), val_split)
    return val_with_gt


def _training_ids(listing: Path, card: dict, drop: float) -> list[str]:
    """The pseudo-masks' ids, less the `drop` share with the lowest quality score."""
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if drop == 0:
        return ids
    quality = card["quality"]["per_image"]
    ranked = sorted(ids, key=lambda i: (quality.get(i) is not None, quality.get(i) or 0.0, i))
    left_out = set(ranked[:int(round(drop * len(ids)))])
    get_logger().info("train_segmenter: leaving out the %d pseudo-masks (%.0f%%) with the lowest quality score",
                      len(left_out), 100 * drop)
    return [i for i in ids if i not in left_out]


def _iteration_rate(runner, schedule, warmup: int = 5) -> dict:
    """Iterations/s and images/s after the first `warmup` iterations, from mmengine's
    per-iteration timer (its log's `time`; a resumed run's history holds the earlier ones)."""
    seconds, _counts = runner.message_hub.get_scalar("train/time").data
    steady = np.asarray(seconds[warmup:], dtype=np.float64)
    if not steady.size:
        return {"iterations_after_warmup": 0, "iterations_per_s": None, "images_per_s": None}
    per_s = 1.0 / float(np.mean(steady))
    return {"iterations_after_warmup": int(steady.size), "iterations_per_s": round(per_s, 3),
            "images_per_s": round(per_s * schedule.batch_size, 2)}


def _loss_history(runner) -> np.ndarray:
    """Per-iteration total loss, as mmengine's message hub logged it (kept across resume)."""
    values, _counts = runner.message_hub.get_scalar("train/loss").data
    return np.asarray(values, dtype=np.float64)
