"""The data-set registry: `dataset.type` names an entry, `prepare` looks it up and calls it.

A data set is a `DataSource` subclass registered with `@DATASETS.register_module()`
(under its class name, or `name=`). Its contract:

- `Spec`: a frozen dataclass of the `dataset` config section; its fields are the keys a
  config may set (a `type` field is optional: the key is dropped when there is none);
- `prepare(out_dir) -> {'artifacts': {...}, 'info': {...}}`: write the prepared data
  set into `out_dir` with `pipeline.datasets.prepared.write_prepared` (classes with
  background first, palette, image and mask folders, splits, image-level labels), and
  report counts (artifacts) and anything a user should see (info, e.g. skipped items).
  Write files atomically and reuse what an interrupted run already wrote; bad items go
  through `pipeline.datasets.checks.Skips` (never dropped silently).
- `check()` (optional): a quick look at what `prepare` will read (the data root, its
  layout, label files), run by `--dry-run` and before a run, so a missing folder fails
  in a second with one line instead of minutes later;
- `example(folder, name) -> dict`: write a tiny tree in the data set's own format into
  `folder` and return the `dataset` section that prepares it (`name`: the registered
  name it is asked under). The plug-in contract tests prepare every registered data
  set from its example, so a new data set needs no test edits.

A user's own module registers the same way and is loaded by a config's
`custom_imports = dict(imports=['my_module'])` (README, "Plug-ins").
"""

from __future__ import annotations

import abc
from pathlib import Path

from mmengine.registry import Registry

from pipeline.config import section_to_dataclass
from pipeline.errors import ConfigError

DATASETS = Registry("wsss data set")


class DataSource(abc.ABC):
    """Base of every registered data set; see the module docstring for the contract."""

    Spec: type

    def __init__(self, spec):
        self.spec = spec

    @classmethod
    def from_section(cls, section: dict) -> "DataSource":
        fields = cls.Spec.__dataclass_fields__
        return cls(section_to_dataclass(cls.Spec, section, "dataset", drop=() if "type" in fields else ("type",)))

    def check(self) -> None:
        """Raise a UserError if the data `prepare` reads is missing or unreadable (cheap: no image is decoded)."""

    @abc.abstractmethod
    def prepare(self, out_dir: Path) -> dict:
        """Write the prepared data set into `out_dir`; {'artifacts': ..., 'info': ...}."""

    @classmethod
    @abc.abstractmethod
    def example(cls, folder: Path, name: str) -> dict:
        """Write a tiny tree of this format into `folder`; the `dataset` section preparing it."""


def build_data_source(section: dict) -> DataSource:
    """The registered data set `section['type']`, built from the section."""
    kind = section.get("type")
    source = DATASETS.module_dict.get(kind) if isinstance(kind, str) else None  # not .get: it logs through torch
    if source is None:
        raise ConfigError(f"dataset.type = {kind!r} is not a registered data set; choose one of: "
                          f"{', '.join(sorted(DATASETS.module_dict))} (or register your own: README, 'Plug-ins')")
    return source.from_section(dict(section))
