"""A training stage's schedule, as its config section gives it (imports no torch: the CLI
plans and checks runs without loading it)."""

from __future__ import annotations

import dataclasses

from pipeline.errors import ConfigError
from pipeline.precision import check_amp


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int  # total over all processes
    lr: float
    split: str = "train"
    head_lr_mult: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    resize_long: tuple[int, int] = (320, 640)
    crop: int = 448
    flip: bool = True
    # Photometric augmentation against a classifier that fits its photos: brightness, contrast
    # and saturation each x a factor from [1 - s, 1 + s] (timm's ImageNet recipe: 0.4; the
    # boundary branch ignores it). 0: none (the paper, IRN).
    color_jitter: float = 0.0
    amp: str | None = "bf16"  # CUDA only: 'bf16', 'fp16' or None
    channels_last: bool = True  # CUDA only
    num_workers: int = 4
    seed: int = 0
    # Epochs at the start that train the classification loss alone. The paper needs
    # none: its ImageNet-initialised classifier classifies from the start. From random
    # init, L_bas means nothing until S > 0, and L_area would collapse the maps first.
    classifier_warmup_epochs: int = 0
    # A checkpoint every N optimisation steps inside an epoch (0: only at epoch ends);
    # a resumed run continues at the next sample, with the same random draws.
    checkpoint_every_steps: int = 0
    # 'long': the long side is drawn from `resize_long` (IRN); 'square': the image is
    # resized to a square of that side, as the BAS reference does (512 x 512).
    resize: str = "long"
    sync_bn: bool = True  # SyncBatchNorm across processes where the backend has it (NCCL)
    train_biases: bool = True  # False: biases keep their ImageNet values (the BAS reference)
    # LVIS's repeat-factor sampling on the image-level labels (Gupta et al., CVPR 2019): an
    # image showing a class seen in a share f < t of the images is drawn sqrt(t / f) times
    # as often; the epoch keeps its steps. 0: every image once an epoch (the paper).
    repeat_factor_threshold: float = 0.0

    def __post_init__(self) -> None:
        check_amp(self.amp, "amp")
        for key in ("epochs", "batch_size", "crop"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("lr", "head_lr_mult"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be positive, got {getattr(self, key)}")
        for key in ("momentum", "weight_decay", "num_workers", "classifier_warmup_epochs", "checkpoint_every_steps"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must not be negative, got {getattr(self, key)}")
        if not 0 <= self.color_jitter < 1:
            raise ConfigError(f"color_jitter must lie in [0, 1) (the largest relative change; 0: off), "
                              f"got {self.color_jitter}")
        if not 0 <= self.repeat_factor_threshold <= 1:
            raise ConfigError(f"repeat_factor_threshold must lie in [0, 1] (a share of the images; 0: off), "
                              f"got {self.repeat_factor_threshold}")
        if self.resize not in ("long", "square"):
            raise ConfigError(f"resize must be 'long' or 'square', got {self.resize!r}")
