"""The built-in localizers' own options (`localizer.<type>`), without torch: the CLI
checks a config (`--dry-run`, `--status`) without loading the models. A plug-in
localizer keeps its Options on its class (`pipeline/models/base.py`)."""

from __future__ import annotations

import dataclasses

from pipeline.errors import ConfigError

BAS_LOSS_TERMS = ("mcls", "frg", "bas", "area")


@dataclasses.dataclass(frozen=True)
class BASOptions:
    """`localizer.bas`: the loss weights (the paper's), and the BatchNorm statistics of
    the erased pass ('batch' as in the paper's code, or 'running')."""

    loss_weights: dict = dataclasses.field(
        default_factory=lambda: {"mcls": 1.0, "frg": 0.2, "bas": 1.0, "area": 1.2})
    erased_bn: str = "batch"
    # A constant 0 logit in L_mcls (pipeline.losses.multilabel_ce): needed for one class
    # (else L_mcls is identically 0) and for negative images to teach the classifier.
    background_logit: bool = False

    def __post_init__(self) -> None:
        if set(self.loss_weights) != set(BAS_LOSS_TERMS):
            raise ConfigError(f"localizer.bas.loss_weights must give {', '.join(BAS_LOSS_TERMS)}, "
                              f"got {sorted(self.loss_weights)}")
        if self.erased_bn not in ("batch", "running"):
            raise ConfigError(f"localizer.bas.erased_bn must be 'batch' or 'running', got {self.erased_bn!r}")


@dataclasses.dataclass(frozen=True)
class CAMOptions:
    loss_weights: dict = dataclasses.field(default_factory=lambda: {"soft_margin": 1.0})


@dataclasses.dataclass(frozen=True)
class DRSOptions:
    delta: float | None = None  # None: learned per channel; a number: fixed for all
    loss_weights: dict = dataclasses.field(default_factory=lambda: {"soft_margin": 1.0})


# localizer.type -> its Options, for the types this package defines
BUILT_IN_OPTIONS = {"bas": BASOptions, "cam": CAMOptions, "drs": DRSOptions}
