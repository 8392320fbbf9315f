"""The segmenter's predictions as palette PNGs, scored on real GT where it exists.

Predictions use the test-time recipe in `evaluate_segmenter` (scales, flip, dense CRF),
in bf16 and channels_last on CUDA; the CRF, the PNG writes and the scores run in worker
processes while the GPU predicts the next images. Under torchrun each process predicts
every world_size-th image and the counts are gathered.
Scores come from the pipeline's evaluator and, as a cross-check, from mmseg's own
IoUMetric on the same predictions; the manifest holds both. Per-image resume: written
predictions are read back instead of being predicted again.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from pipeline import distributed
from pipeline.artifacts import PREDICTIONS_DIR, RAW_PREDICTIONS_DIR, PreparedData, Predictions, Segmenter
from pipeline.crf import CRFParams
from pipeline.datasets.masks import read_mask
from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import ConfigError
from pipeline.log import get_logger
from pipeline.per_image import PerImage
from pipeline.precision import autocast_dtype, check_amp
from pipeline.predictions import PredictionJob, PredictionWriters, present_classes
from pipeline.runner import StageContext, StageResult
from pipeline.stage import register_stage

AGREEMENT = 0.01  # percentage points between our mIoU and mmseg's IoUMetric


@dataclasses.dataclass(frozen=True)
class SegmenterCRF(CRFParams):
    """The test-time CRF: the pseudo-masks' CRF schema, and whether it runs."""

    enabled: bool = False
    min_prob: float = 0.01  # classes whose probability stays below this everywhere are left out of the CRF


@dataclasses.dataclass(frozen=True)
class SegEvalSettings:
    split: str = "auto"  # a split name; 'auto': 'val' where the data set has it, else the pseudo-masks' split
    scales: tuple[float, ...] = (1.0,)  # multipliers of the training base scale
    flip: bool = False
    crf: SegmenterCRF = dataclasses.field(default_factory=lambda: SegmenterCRF())
    amp: str | None = "bf16"  # CUDA only: autocast dtype ('bf16', 'fp16') or None for fp32; the CPU runs fp32
    # Processes running the CRF and the PNG writes while the GPU predicts the next images.
    # None: on CUDA this process's share of the cores less one (at most 8), on the CPU 0
    # (in the loop: the CPU is busy predicting anyway).
    workers: int | None = None

    def __post_init__(self) -> None:
        check_amp(self.amp, "evaluate_segmenter.amp")


@register_stage(
    step=11, consumes=(PreparedData, Segmenter), produces=Predictions,
    settings=SegEvalSettings, execution_keys=("evaluate_segmenter.workers",),
    description="segmenter mIoU on val GT (multi-scale, flip, CRF as configured)",
    headline=("miou", "segmenter mIoU"),
    distributed=True)  # sharded: each process does every world_size-th image
def evaluate_segmenter(ctx: StageContext) -> StageResult:
    settings = ctx.settings()
    crf = settings.crf
    use_crf = crf.enabled
    dataset = ctx.input(PreparedData).load()
    split = _split(ctx, settings, dataset)
    ids = dataset.split(split)
    out_final = ctx.out_dir / PREDICTIONS_DIR
    out_raw = ctx.out_dir / RAW_PREDICTIONS_DIR if use_crf else None
    work = PerImage("evaluate_segmenter", ids, done=lambda i: (out_final / f"{i}.png").is_file()
                    and (not use_crf or (out_raw / f"{i}.png").is_file()))
    k = len(dataset.classes)

    def job(image_id: str, **prediction) -> PredictionJob:
        return PredictionJob(image_id, out_final / f"{image_id}.png", out_raw and out_raw / f"{image_id}.png",
                             dataset.mask_path(image_id), dataset.palette, k, dataset.ignore_index, **prediction)

    with PredictionWriters(_workers(settings.workers), k, dataset.ignore_index) as writers:
        if work.todo:
            predictor = _predictor(ctx, settings)
            for image_id in work.progress(work.todo, "predict"):
                image = dataset.load_image(image_id)
                probs = predictor.probabilities(image)
                prediction = dict(raw=probs.argmax(0).astype(np.uint8))
                if use_crf:
                    present = present_classes(probs, crf.min_prob)
                    prediction.update(image=image, probs=probs[present], present=present, crf=crf)
                writers.submit(job(image_id, **prediction))  # CRF, PNGs, scores: in a worker
        predicted = set(work.todo)
        for image_id in [i for i in work.mine if i not in predicted]:
            writers.submit(job(image_id))  # written by an earlier attempt: read back and scored
        writers.finish()
    record, reused = work.record(), work.reused()
    final, without_crf = work.gather(writers.final), work.gather(writers.without_crf)
    iou_metric = _iou_metric(dataset, work, out_final)
    scored = len(iou_metric.results)
    metrics: dict = {}
    info: dict = {"split": split, "images_without_gt": len(ids) - scored, "predictions": PREDICTIONS_DIR,
                  "test_time": dataclasses.asdict(settings), **record}
    if scored:
        info["scored_on"] = split
        metrics = final.summary(dataset.classes)
        del metrics["ignored_share"]  # predictions never hold the ignore label
        if use_crf:
            metrics["miou_without_crf"] = without_crf.summary(dataset.classes)["miou"]
        mmseg_miou = iou_metric.compute_metrics(iou_metric.results)["mIoU"]  # percent, 2 decimals
        metrics["mmseg_iou_metric_miou"] = mmseg_miou / 100
        info["mmseg_iou_metric_agrees"] = agrees = abs(100 * metrics["miou"] - mmseg_miou) <= AGREEMENT
        if not agrees:
            get_logger().warning("evaluate_segmenter: mIoU %.3f%% differs from mmseg's IoUMetric %.2f%%",
                                 100 * metrics["miou"], mmseg_miou)
        get_logger().info("evaluate_segmenter: segmenter mIoU on %s GT: %.1f%% (%d images; mmseg IoUMetric "
                          "%.2f%%)%s", split, 100 * metrics["miou"], scored, mmseg_miou,
                          f", {100 * metrics['miou_without_crf']:.1f}% without the CRF" if use_crf else "")
    else:
        get_logger().warning("evaluate_segmenter: no '%s' image has a GT mask: predictions written, nothing "
                             "scored", split)
    return StageResult(artifact=Predictions(ctx.out_dir, split=split),
                       artifacts={"images": len(ids), "predictions": len(ids), "reused": reused, "scored_against_gt": scored},
                       metrics=metrics, info=info)


def _split(ctx: StageContext, settings: SegEvalSettings, dataset: PreparedDataset) -> str:
    split = settings.split
    if split == "auto":
        split = "val" if "val" in dataset.splits else ctx.input(Segmenter).train_split
        get_logger().info("evaluate_segmenter: split 'auto' -> '%s'%s", split, "" if split == "val" else
                          " (the data set has no 'val': predicting the images the segmenter trained on)")
    if split not in dataset.splits:
        raise ConfigError(f"evaluate_segmenter.split={split!r}: the prepared data set has the splits "
                          f"{', '.join(dataset.splits)} (or use 'auto')")
    return split


def _predictor(ctx: StageContext, settings: SegEvalSettings):
    """The trained segmentor in eval mode, wrapped for multi-scale + flip prediction."""
    import torch  # here, not at the top: the CLI plans runs without loading torch

    from pipeline.segmenter import mmcv_compat

    mmcv_compat.install()
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from pipeline.segmenter.inference import Predictor

    register_all_modules()
    trained = ctx.input(Segmenter)
    cfg = Config.fromfile(str(trained.mmseg_config))
    cfg.model.backbone.init_cfg = None  # trained weights follow
    if cfg.model.decode_head.norm_cfg.type == "SyncBN":  # trained under torchrun; one process here
        for part in ("backbone", "decode_head", "auxiliary_head"):
            if part in cfg.model and "norm_cfg" in cfg.model[part]:
                cfg.model[part].norm_cfg = dict(type="BN", requires_grad=True)
    model = MODELS.build(cfg.model)
    state = torch.load(trained.model_path, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict(state)
    device = distributed.device()
    # Every test image has its own size: cuDNN autotuning per shape (on after mmengine's
    # training in the same process) cost 11 s per VOC-size image and 132 GiB of workspace
    # on an H200 (bench/gpu_check.py).
    torch.backends.cudnn.benchmark = False
    model.to(device).eval()
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
    return Predictor(model, base_scale=trained.base_scale, scales=tuple(settings.scales), flip=settings.flip, device=device,
                     dtype=autocast_dtype(device, settings.amp))


def _workers(workers: int | None) -> int:
    import torch

    if workers is not None:
        return workers
    if not torch.cuda.is_available():
        return 0
    return max(0, min(8, (os.cpu_count() or 1) // distributed.world_size() - 1))


def _iou_metric(dataset: PreparedDataset, work: PerImage, predictions):
    """mmseg's own IoUMetric on the written predictions, each process its share: a cross-check."""
    import torch

    from pipeline.segmenter import mmcv_compat

    mmcv_compat.install()
    from mmseg.evaluation import IoUMetric

    metric = IoUMetric(iou_metrics=["mIoU"], ignore_index=dataset.ignore_index)
    metric.dataset_meta = {"classes": dataset.classes}
    for image_id in work.mine:
        gt = dataset.load_mask(image_id)
        if gt is not None:
            final = read_mask(predictions / f"{image_id}.png")
            metric.process({}, [{"pred_sem_seg": {"data": torch.from_numpy(final)[None]},
                                 "gt_sem_seg": {"data": torch.from_numpy(gt)[None]}}])
    metric.results = work.gather(metric.results)  # lists: concatenated in rank order
    return metric
