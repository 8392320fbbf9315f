"""The localizer contract: what every stage, loop and check may ask of a localizer.

A localizer is a `Localizer` subclass registered in `pipeline.models.LOCALIZERS` with
`@LOCALIZERS.register_module(name=...)`; `localizer.type` is that name. Nothing outside
the model reaches past the members below.

- `Options`: a frozen dataclass of the method's own options, read from the config
  section `localizer.<type>` (absent: its defaults); at least `loss_weights`, a dict
  {loss term: weight}.
- `build(num_classes, backbone, head_init, options)` (classmethod): the model from the
  `localizer.backbone` dict, `localizer.head_init` and the Options.
- `heads()`: the modules trained at `head_lr_mult` x the learning rate.
- `forward(images, labels)`: a dict of loss terms, scalars. The terms `loss_weights`
  names are summed with those weights; any other term (e.g. `diag_*`) is only logged.
  `labels` is (B, C) 0/1; a row of zeros is a negative (background-only) image, which
  every localizer must train on without error (say how in the docstring).
- `classification_terms`: the names of the terms that classify; a classifier warm-up
  (`train_localizer.classifier_warmup_epochs`) trains only these.
- `forward(images)`: the class maps (B, C, h, w) the export stage writes;
  `maps_are_probabilities` says whether they are probabilities in [0, 1] (averaged over
  views at export) or unbounded activations (summed and max-normalised per class).
- `class_activation(images)`: the class activation map F (B, C, h, w) whose global
  average is the classification logit; the premise check masks it.
- `background_activation(images, labels)` (optional; BAS's): (B, C) the score left to each
  labelled class once its own map is erased, relative to the score before; the GT-free
  erasure check (`pipeline/erasure_check.py`) reads it.
- `lendable_resnet()`: the torchvision-ResNet backbone (`pipeline.models.backbone.ResNetBackbone`)
  IRN's boundary net may borrow, or None (by default: `self.backbone` when it is one).
"""

from __future__ import annotations

import abc

import torch
from torch import nn


class Localizer(nn.Module, metaclass=abc.ABCMeta):
    """A subclass that leaves out an abstract member cannot be built (a clear error at
    construction, not halfway through a stage)."""

    Options: type
    classification_terms: tuple[str, ...] = ()
    maps_are_probabilities: bool = False

    @classmethod
    @abc.abstractmethod
    def build(cls, num_classes: int, backbone: dict, head_init: str, options) -> "Localizer":
        """The model from the `localizer` config section's parts."""

    @abc.abstractmethod
    def heads(self) -> list[nn.Module]:
        """The modules trained at the head learning rate."""

    @abc.abstractmethod
    def class_activation(self, images: torch.Tensor) -> torch.Tensor:
        """The class activation map F (B, C, h, w) whose GAP is the classification logit."""

    def lendable_resnet(self):
        from pipeline.models.backbone import ResNetBackbone

        backbone = getattr(self, "backbone", None)
        return backbone if isinstance(backbone, ResNetBackbone) else None
