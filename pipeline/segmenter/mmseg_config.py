"""The mmsegmentation config the segmenter trains from, built from the pipeline config.

The result is an ordinary mmseg/mmengine config (written next to the model, so
`python tools/train.py` or `tools/test.py` of mmseg run it as is). Train data is the
pseudo-mask data set; validation data is the real GT, never pseudo-masks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.artifacts import DEFAULT_REFINEMENT
from pipeline.errors import ConfigError
from pipeline.images import IMAGENET_MEAN, IMAGENET_STD
from pipeline.precision import check_amp

HEADS = ("deeplabv3plus", "deeplabv3")
DEPTHS = (18, 34, 50, 101)
# mmseg's ResNet (style 'pytorch', plain stem) has torchvision's parameter names.
STRIDES = {8: ((1, 2, 1, 1), (1, 1, 2, 4)), 16: ((1, 2, 2, 1), (1, 1, 1, 2))}


@dataclasses.dataclass(frozen=True)
class SegmenterModel:
    """The `segmenter` config section. `backbone='resnet'`: mmseg's ResNet-`depth` with
    torchvision weights; `backbone='timm'`: mmseg's TIMMBackbone around timm's
    `timm_name` (an EfficientNet), with the localizer's weight options ('packaged', 'timm',
    a .pth of timm's model, or None)."""

    head: str = "deeplabv3plus"  # or 'deeplabv3'
    backbone: str = "resnet"  # or 'timm'
    depth: int = 101
    timm_name: str = "tf_efficientnet_lite0"
    output_stride: int = 8
    # resnet: torchvision weights name or .pth; timm: 'packaged', 'timm', a .pth, or 'localizer': the
    # trained localizer's backbone (same timm model), which already knows the data set's classes
    weights: str | None = "IMAGENET1K_V1"
    allow_random_init: bool = False  # weights=None is refused unless this says so
    aspp_dilations: tuple[int, ...] = (1, 12, 24, 36)
    head_channels: int | None = None  # None: mmseg's choice for the depth (512, or 128 for R18/34)
    auxiliary_head: bool = True
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ConfigError(f"segmenter.head must be one of {HEADS}, got {self.head!r}")
        if self.backbone not in ("resnet", "timm"):
            raise ConfigError(f"segmenter.backbone must be 'resnet' or 'timm', got {self.backbone!r}")
        if self.backbone == "resnet" and self.depth not in DEPTHS:
            raise ConfigError(f"segmenter.depth must be one of {DEPTHS}, got {self.depth}")
        if self.output_stride not in STRIDES:
            raise ConfigError(f"segmenter.output_stride must be 8 or 16, got {self.output_stride}")
        if self.weights == "localizer" and self.backbone != "timm":
            raise ConfigError("segmenter.weights='localizer' lends a timm localizer's backbone: it needs "
                              "segmenter.backbone='timm' with the localizer's timm_name")
        if self.weights is None and not self.allow_random_init:
            raise ConfigError("segmenter.weights=None trains the segmenter's backbone from random init, which "
                              "the config must ask for: set segmenter.allow_random_init=True, or give ImageNet "
                              "weights (a torchvision name such as 'IMAGENET1K_V1', or a local .pth).")


@dataclasses.dataclass(frozen=True)
class SegmenterSchedule:
    """The `train_segmenter` config section (mmseg's iteration-based recipe)."""

    iters: int = 20000
    batch_size: int = 16  # total over all processes
    lr: float = 0.01
    min_lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    crop: tuple[int, int] = (512, 512)
    scale: tuple[int, int] = (2048, 512)  # RandomResize base scale, times ratio_range
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    photometric: bool = True
    amp: str | None = None  # CUDA only: bf16 autocast (no loss scaler) or fp16 (mmengine's AmpOptimWrapper); None: fp32
    checkpoint_interval: int = 2000
    val_interval: int | None = None  # None: no validation inside training (evaluate_segmenter scores)
    log_interval: int = 50
    num_workers: int = 4
    seed: int = 0
    val_split: str = "val"  # GT masks of this split validate (never pseudo-masks)
    # Leave this share of the pseudo-masks out of training: those with the lowest GT-free
    # quality score of the data-set card (0: train on all).
    drop_lowest_quality: float = 0.0
    # The pseudo-mask data set it trains on, named by the stage that produces it: the dense
    # CRF's (the default), IRN's random walk (which also switches that stage on), or a
    # plug-in refinement's.
    pseudo_masks: str = DEFAULT_REFINEMENT

    def __post_init__(self) -> None:
        check_amp(self.amp, "train_segmenter.amp")
        if not 0.0 <= self.drop_lowest_quality < 1.0:
            raise ConfigError(f"train_segmenter.drop_lowest_quality must be in [0, 1), got {self.drop_lowest_quality}")


@dataclasses.dataclass(frozen=True)
class SegmenterData:
    """Where the data is, from upstream stages."""

    classes: list[str]
    palette: list[list[int]]
    train_images: Path
    train_masks: Path
    train_list: Path
    val_images: Path | None  # None (no GT anywhere): the config has no validation part
    val_masks: Path | None
    val_list: Path | None
    image_suffix: str = ".jpg"
    ignore_index: int = 255


def _norm_cfg(batch_size: int, world_size: int, cuda: bool) -> dict:
    """SyncBN across processes on CUDA; on CPU each process keeps its own BatchNorm statistics."""
    if batch_size % world_size:
        raise ConfigError(f"train_segmenter.batch_size={batch_size} is not divisible by the {world_size} processes")
    norm_cfg = dict(type="SyncBN" if world_size > 1 and cuda else "BN", requires_grad=True)
    if norm_cfg["type"] == "BN" and batch_size // world_size < 2:
        raise ConfigError(f"train_segmenter.batch_size={batch_size} leaves one image per process: the "
                          "ASPP head's image-pooling BatchNorm needs at least two; raise the batch size")
    return norm_cfg


def _default_hooks(schedule: SegmenterSchedule) -> dict:
    return dict(
        runtime_info=dict(type="DeferredRuntimeInfoHook", interval=schedule.log_interval),
        timer=dict(type="IterTimerHook"),
        logger=dict(type="LoggerHook", interval=schedule.log_interval, log_metric_by_epoch=False),
        param_scheduler=dict(type="ParamSchedulerHook"),
        checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=schedule.checkpoint_interval,
                        max_keep_ckpts=2, save_last=True),
        sampler_seed=dict(type="DistSamplerSeedHook"),
    )


def build_mmseg_config(model: SegmenterModel, schedule: SegmenterSchedule, data: SegmenterData, *,
                       work_dir: Path, backbone_checkpoint: Path | None, world_size: int = 1,
                       cuda: bool = False) -> dict:
    """A complete mmseg 1.x config as a plain dict (mmengine `Config(dict)` takes it)."""
    norm_cfg = _norm_cfg(schedule.batch_size, world_size, cuda)
    cfg = dict(
        default_scope="mmseg",
        work_dir=str(work_dir),
        launcher="pytorch" if world_size > 1 else "none",
        randomness=dict(seed=schedule.seed),
        env_cfg=dict(cudnn_benchmark=cuda, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                     dist_cfg=dict(backend="nccl" if cuda else "gloo")),
        log_level="INFO",
        log_processor=dict(by_epoch=False),
        model=_model(model, data, norm_cfg, backbone_checkpoint, schedule.crop),
        train_dataloader=dict(
            batch_size=schedule.batch_size // world_size,
            num_workers=schedule.num_workers,
            persistent_workers=schedule.num_workers > 0,
            sampler=dict(type="InfiniteSampler", shuffle=True, seed=schedule.seed),
            dataset=_dataset(data, data.train_images, data.train_masks, data.train_list, _train_pipeline(schedule)),
        ),
        train_cfg=dict(
            type="IterBasedTrainLoop",
            max_iters=schedule.iters,
            val_interval=schedule.val_interval or schedule.iters,
            val_begin=1 if schedule.val_interval else schedule.iters + 1,  # never, unless asked
        ),
        optim_wrapper=dict(
            **_optim_wrapper(schedule.amp if cuda else None),
            optimizer=dict(type="SGD", lr=schedule.lr, momentum=schedule.momentum,
                           weight_decay=schedule.weight_decay),
            clip_grad=None,
        ),
        param_scheduler=[dict(type="PolyLR", eta_min=schedule.min_lr, power=schedule.poly_power,
                              begin=0, end=schedule.iters, by_epoch=False)],
        default_hooks=_default_hooks(schedule),
        # Exact resume: torch's generator state travels in the checkpoints (mmengine
        # replays the data loader itself). Importable wherever this project is installed.
        custom_imports=dict(imports=["pipeline.segmenter.hooks", "pipeline.segmenter.throughput"],
                            allow_failed_imports=False),
        custom_hooks=[dict(type="TorchRandomStateHook")],
        load_from=None,
        resume=True,  # mmengine picks up <work_dir>/last_checkpoint after an interruption
    )
    if world_size > 1 and not cuda:  # mmengine's default DDP wrapper assumes one GPU per process
        cfg["model_wrapper_cfg"] = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False)
    if data.val_list is not None:  # GT of the val split: for mmseg's tools/test.py and val_interval
        for part in ("val", "test"):
            cfg[f"{part}_dataloader"] = _eval_loader(data, schedule.scale)
            cfg[f"{part}_evaluator"] = dict(type="IoUMetric", iou_metrics=["mIoU"])
            cfg[f"{part}_cfg"] = dict(type="ValLoop" if part == "val" else "TestLoop")
    elif schedule.val_interval:
        raise ConfigError("train_segmenter.val_interval is set but the val split has no GT masks")
    return cfg


def _optim_wrapper(amp: str | None) -> dict:
    """bf16 without a loss scaler (pipeline/segmenter/throughput.py); fp16 with mmengine's."""
    if amp == "bf16":
        return dict(type="BF16OptimWrapper")
    if amp == "fp16":
        return dict(type="AmpOptimWrapper", dtype="float16")
    return dict(type="OptimWrapper")


def _model(model: SegmenterModel, data: SegmenterData, norm_cfg: dict, backbone_checkpoint: Path | None,
           crop: tuple[int, int]) -> dict:
    init_cfg = None if backbone_checkpoint is None else dict(type="Pretrained", checkpoint=str(backbone_checkpoint))
    if model.backbone == "timm":
        backbone, channels_in, mean, std = _timm_backbone(model, init_cfg)
        big = False
    else:
        expansion = 4 if model.depth >= 50 else 1
        channels_in = [64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]
        strides, dilations = STRIDES[model.output_stride]
        backbone = dict(type="ResNet", depth=model.depth, num_stages=4, out_indices=(0, 1, 2, 3), strides=strides,
                        dilations=dilations, contract_dilation=True, style="pytorch", norm_cfg=norm_cfg,
                        norm_eval=False, init_cfg=init_cfg)
        mean, std, big = IMAGENET_MEAN, IMAGENET_STD, model.depth >= 50
    channels = model.head_channels or (512 if big else 128)
    common = dict(num_classes=len(data.classes), dropout_ratio=model.dropout, norm_cfg=norm_cfg,
                  align_corners=False, ignore_index=data.ignore_index)
    head = dict(in_channels=channels_in[3], in_index=3, channels=channels, dilations=tuple(model.aspp_dilations),
                loss_decode=_cross_entropy(1.0), **common)
    if model.head == "deeplabv3plus":
        head.update(type="DepthwiseSeparableASPPHead", c1_in_channels=channels_in[0], c1_channels=48 if big else 12)
    else:
        head.update(type="ASPPHead")
    cfg = dict(
        type="EncoderDecoder",
        data_preprocessor=dict(
            type="SegDataPreProcessor",
            mean=[255 * m for m in mean],
            std=[255 * s for s in std],
            bgr_to_rgb=True,  # LoadImageFromFile reads BGR
            pad_val=0,
            seg_pad_val=data.ignore_index,
            size=tuple(crop),
        ),
        backbone=backbone,
        decode_head=head,
        train_cfg=dict(),
        test_cfg=dict(mode="whole"),
    )
    if model.auxiliary_head:
        cfg["auxiliary_head"] = dict(type="FCNHead", in_channels=channels_in[2], in_index=2, channels=channels // 2,
                                     num_convs=1, concat_input=False, loss_decode=_cross_entropy(0.4), **common)
    return cfg


def _timm_backbone(model: SegmenterModel, init_cfg: dict | None) -> tuple[dict, list[int], tuple, tuple]:
    """mmseg's TIMMBackbone config for a timm EfficientNet: four feature levels (strides
    4, 8, 16, 16 or 8), their channels, and the input statistics of its weights."""
    import timm

    if not timm.is_model(model.timm_name):
        raise ConfigError(f"segmenter.timm_name={model.timm_name!r} is not a timm model")
    probe = timm.create_model(model.timm_name, features_only=True, pretrained=False, out_indices=(1, 2, 3, 4),
                              output_stride=model.output_stride)
    cfg = probe.pretrained_cfg
    backbone = dict(type="TIMMBackbone", model_name=model.timm_name, features_only=True, pretrained=False,
                    out_indices=(1, 2, 3, 4), output_stride=model.output_stride, init_cfg=init_cfg)
    return (backbone, probe.feature_info.channels(), tuple(cfg.get("mean", IMAGENET_MEAN)),
            tuple(cfg.get("std", IMAGENET_STD)))


def _cross_entropy(weight: float) -> dict:
    # avg_non_ignore: the loss averages over labelled pixels only (pseudo-masks may hold 255).
    return dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=weight, avg_non_ignore=True)


def _train_pipeline(schedule: SegmenterSchedule) -> list[dict]:
    steps = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations"),
        dict(type="RandomResize", scale=tuple(schedule.scale), ratio_range=tuple(schedule.ratio_range),
             keep_ratio=True),
        dict(type="RandomCrop", crop_size=tuple(schedule.crop), cat_max_ratio=schedule.cat_max_ratio),
        dict(type="RandomFlip", prob=0.5),
    ]
    if schedule.photometric:
        steps.append(dict(type="PhotoMetricDistortion"))
    return steps + [dict(type="PackSegInputs")]


def _dataset(data: SegmenterData, images: Path, masks: Path, ann_file: Path, pipeline: list[dict]) -> dict:
    return dict(
        type="BaseSegDataset",
        data_root="",
        data_prefix=dict(img_path=str(images), seg_map_path=str(masks)),
        ann_file=str(ann_file),
        img_suffix=data.image_suffix,
        seg_map_suffix=".png",
        reduce_zero_label=False,
        ignore_index=data.ignore_index,
        metainfo=dict(classes=tuple(data.classes), palette=[list(c) for c in data.palette]),
        pipeline=pipeline,
    )


def _eval_loader(data: SegmenterData, scale: tuple[int, int]) -> dict:
    pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="Resize", scale=tuple(scale), keep_ratio=True),  # mmseg: the training base scale
        dict(type="LoadAnnotations"),  # after Resize: GT stays at the image's own size
        dict(type="PackSegInputs"),
    ]
    return dict(
        batch_size=1,
        num_workers=2,
        persistent_workers=False,
        sampler=dict(type="DefaultSampler", shuffle=False),
        dataset=_dataset(data, data.val_images, data.val_masks, data.val_list, pipeline),
    )
