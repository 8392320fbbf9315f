"""The run folder's contract: one typed artifact per kind, and the files behind it.

A stage declares the kinds it consumes and produces (`@register_stage(consumes=(ClassMaps,
...), produces=SeedScores)`). It returns its artifact in `StageResult.artifact`; the
runner stores `artifact.record()` (its fields, kind and version) in the stage's manifest,
and a consumer gets it back typed with `ctx.input(ClassMaps)`: the fields, and `folder`,
the producer's folder, where the files are (each kind names its own). No stage reads
another's manifest by key. A kind's VERSION goes up when its fields or files change: a
stage whose artifact carries another version is stale, and reading one says which stage
to re-run. `RunFolder` reads a finished run from outside (the report, benches, tools).
A new kind is a subclass here or in a plug-in module.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from pipeline.errors import ConfigError, PipelineError

MANIFEST = "manifest.json"  # written last by the runner: the stage is done
IN_PROGRESS = ".in_progress.json"  # while a stage runs: the fingerprint it runs under
MODEL_FILE = "model.pth"  # every training stage's final weights
MAPS_DIR = "maps"  # export_maps: maps/<id>.npz (`ClassMaps.read_image`)
PREMISE_CURVES = "premise.json"  # check_premise: offsets, per-class curves and verdict
PREMISE_FIGURE = "premise.png"  # check_premise: those curves drawn
PSEUDO_MASKS_DIR = "pseudo_masks"  # refine_masks, random_walk: a pseudo-mask data set (pipeline/pseudo_mask_set.py)
MASKS_SUBDIR = "SegmentationClass"  # inside PSEUDO_MASKS_DIR, as in a VOC tree
LISTS_SUBDIR = Path("ImageSets") / "Segmentation"  # inside PSEUDO_MASKS_DIR: <split>.txt
CARD = "dataset_card.json"  # inside PSEUDO_MASKS_DIR
MMSEG_CONFIG = "segmenter_config.py"  # train_segmenter: the mmseg config it trained with
PREDICTIONS_DIR = "predictions"  # evaluate_segmenter: palette PNGs
RAW_PREDICTIONS_DIR = "predictions_without_crf"  # evaluate_segmenter, when its CRF is on

ARTIFACTS: dict[str, type["Artifact"]] = {}  # kind -> its contract


class StaleArtifactError(PipelineError):
    """An artifact written by another layout than this code reads."""


@dataclasses.dataclass(frozen=True)
class Artifact:
    """What one stage hands the next. Subclasses set KIND and VERSION and add fields
    (JSON values); `folder` is where the producing stage wrote its files."""

    KIND: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    folder: Path

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("KIND"):
            ARTIFACTS[cls.KIND] = cls

    def record(self) -> dict:
        """The manifest's `artifact` entry."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "folder"}
        return {"kind": self.KIND, "version": self.VERSION, **json.loads(json.dumps(values, default=str))}

    @classmethod
    def stale_reason(cls, manifest: dict) -> str | None:
        """Why a manifest's artifact is not one this code reads (None: it is)."""
        record = manifest.get("artifact") or {}
        if record.get("kind") != cls.KIND or record.get("version") != cls.VERSION:
            return (f"its {cls.KIND.replace('_', '-')} artifact was written by an older layout (version "
                    f"{record.get('version', 'none')}, this code reads version {cls.VERSION})")
        missing = [f.name for f in dataclasses.fields(cls) if f.name != "folder" and f.name not in record]
        return f"its {cls.KIND} artifact lacks {', '.join(missing)}" if missing else None

    @classmethod
    def read(cls, folder: Path):
        """The artifact a finished stage wrote in `folder`, typed."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        if manifest is None:
            raise PipelineError(f"{folder}: no finished stage there (no readable {MANIFEST}); run that stage first")
        reason = cls.stale_reason(manifest)
        if reason:
            raise StaleArtifactError(f"{folder}: {reason}. Re-run stage '{manifest.get('stage', folder.name)}': "
                                     f"python run_pipeline.py --stage {manifest.get('stage', folder.name)} ...")
        hints = typing.get_type_hints(cls)
        values = {f.name: _typed(manifest["artifact"][f.name], hints.get(f.name))
                  for f in dataclasses.fields(cls) if f.name != "folder"}
        return cls(folder=folder, **values)


def _typed(value: Any, hint: Any) -> Any:
    """A JSON value as its field's type: a list back into a tuple."""
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    return value


@dataclasses.dataclass(frozen=True)
class PreparedData(Artifact):
    """prepare: the data set in the prepared format (`pipeline/datasets/prepared.py`)."""

    KIND = "dataset"
    skipped: dict | None = None  # items the data source left out, by reason

    def load(self):
        from pipeline.datasets.prepared import PreparedDataset

        return PreparedDataset.load(self.folder)


@dataclasses.dataclass(frozen=True)
class Weights(Artifact):
    """A trained network: `folder/model.pth` (`pipeline.training.checkpoint`)."""

    @property
    def model_path(self) -> Path:
        return self.folder / MODEL_FILE


@dataclasses.dataclass(frozen=True)
class LocalizerWeights(Weights):
    KIND = "localizer"
    method: str = ""  # the localizer plug-in, e.g. 'bas'
    split: str = "train"  # the images it trained on


@dataclasses.dataclass(frozen=True)
class CamWeights(LocalizerWeights):
    """The CAM whose maps the localizer's are fused with."""

    KIND = "cam"


@dataclasses.dataclass(frozen=True)
class BoundaryWeights(Weights):
    """IRN's boundary net, for the random walk."""

    KIND = "boundary_net"


@dataclasses.dataclass(frozen=True)
class Premise(Artifact):
    """check_premise: the curves (`premise.json`) and their figure, when checked."""

    KIND = "premise"
    checked: bool = False

    @property
    def curves_path(self) -> Path:
        return self.folder / PREMISE_CURVES

    @property
    def figure_path(self) -> Path:
        return self.folder / PREMISE_FIGURE


@dataclasses.dataclass(frozen=True)
class ClassMaps(Artifact):
    """export_maps: one npz per image of `split`: maps (n, H, W) float16 in [0, 1] and
    classes (n,) indices 1..C, the image's labels."""

    KIND = "maps"
    split: str = "train"
    method: str = ""

    @property
    def maps_dir(self) -> Path:
        return self.folder / MAPS_DIR

    def path(self, image_id: str) -> Path:
        return self.maps_dir / f"{image_id}.npz"

    def read_image(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        return read_maps(self.path(image_id))


@dataclasses.dataclass(frozen=True)
class SeedScores(Artifact):
    """evaluate_maps: the background threshold t and what the seeds scored at it."""

    KIND = "seed_scores"
    threshold: float = 0.5
    rule: str = "auto"  # how t was chosen: 'auto' (no GT), 'oracle' (on GT) or 'fixed'
    split: str = "train"  # the exported split
    score_split: str | None = None  # scored on the exported images also in this split (None: all)
    seed_miou: float | None = None  # None without GT

    def scored_ids(self, dataset) -> list[str]:
        """The images later stages score against GT: the same as the seeds were."""
        return scored_ids(dataset, self.split, self.score_split)


# The stage whose pseudo-masks the later stages take unless the config names another
# (train_segmenter.pseudo_masks, boundary_net.pseudo_masks, random_walk.pseudo_masks, report.pseudo_masks).
DEFAULT_REFINEMENT = "refine_masks"


@dataclasses.dataclass(frozen=True)
class PseudoMasks(Artifact):
    """A refinement's pseudo-mask data set (`pipeline/pseudo_mask_set.py`)."""

    KIND = "pseudo_masks"
    split: str = "train"
    miou: float | None = None  # against GT, ignored pixels left out; None without GT

    @property
    def root(self) -> Path:
        return self.folder / PSEUDO_MASKS_DIR

    def mask_path(self, image_id: str) -> Path:
        return self.root / MASKS_SUBDIR / f"{image_id}.png"

    def card(self) -> dict:
        return json.loads((self.root / CARD).read_text())


@dataclasses.dataclass(frozen=True)
class Segmenter(Weights):
    """train_segmenter: the weights and the mmseg config they trained with."""

    KIND = "segmenter"
    train_split: str = "train"
    base_scale: tuple[int, int] = (512, 512)  # the training resize (long, short)

    @property
    def mmseg_config(self) -> Path:
        return self.folder / MMSEG_CONFIG


@dataclasses.dataclass(frozen=True)
class Predictions(Artifact):
    """evaluate_segmenter: one palette PNG per image of `split`."""

    KIND = "predictions"
    split: str = "val"

    @property
    def masks_dir(self) -> Path:
        return self.folder / PREDICTIONS_DIR

    def mask_path(self, image_id: str) -> Path:
        return self.masks_dir / f"{image_id}.png"


@dataclasses.dataclass(frozen=True)
class Report(Artifact):
    KIND = "html_report"
    html: str = "index.html"

    @property
    def page(self) -> Path:
        return self.folder / self.html


def artifact_class(kind: str | type[Artifact]) -> type[Artifact]:
    """The contract of a kind, given by name or class."""
    if isinstance(kind, type) and issubclass(kind, Artifact):
        return kind
    if kind not in ARTIFACTS:
        raise PipelineError(f"unknown artifact kind {kind!r}: known {', '.join(sorted(ARTIFACTS))}; a new kind "
                            "is a subclass of pipeline.artifacts.Artifact")
    return ARTIFACTS[kind]


def read_maps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(maps (n, H, W) float32 in [0, 1], classes (n,) indices 1..C) from one file
    `export_maps` wrote."""
    with np.load(path) as saved:
        return saved["maps"].astype(np.float32), saved["classes"]


def scored_ids(dataset, export_split: str, score_split: str | None) -> list[str]:
    """The exported images that are scored against GT: all, or those also in
    `score_split` (evaluate_maps.score_split; later stages score the same images)."""
    ids = dataset.split(export_split)
    if score_split is None:
        return ids
    subset = set(dataset.split(score_split))
    scored = [i for i in ids if i in subset]
    if not scored:
        raise ConfigError(f"evaluate_maps.score_split={score_split!r} shares no image with the exported "
                          f"split '{export_split}'")
    return scored


# ---- reading run folders ------------------------------------------------------------

def read_json_record(path: Path, required: Sequence[str] = ()) -> dict | None:
    """A JSON object from `path`, or None when it is absent, does not parse, or lacks a
    required key: a record that cannot be trusted is no record."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or any(k not in data for k in required):
        return None
    return data


def run_id(stage_dir: Path) -> str | None:
    """The id of a finished stage's run (a new one each time it runs): what a consumer's
    fingerprint records to notice that its input was made again."""
    return (read_manifest(stage_dir) or {}).get("run_id")


def read_manifest(stage_dir: Path) -> dict | None:
    """The stage's manifest; None when absent or unreadable (a damaged manifest counts as
    'not done': the stage runs again, and `--status` says why)."""
    return read_json_record(Path(stage_dir) / MANIFEST, required=("fingerprint", "run_id"))


def product_dirs(run_dir: Path, kind: str | type[Artifact]) -> list[Path]:
    """The folders of a run folder's finished stages that produced `kind`, in pipeline order."""
    kind = kind if isinstance(kind, str) else kind.KIND
    found = []
    for path in Path(run_dir).glob(f"*/{MANIFEST}"):
        manifest = read_manifest(path.parent)
        if manifest is not None and manifest.get("produces") == kind:
            found.append((manifest.get("step", 0), path.parent))
    return [folder for _, folder in sorted(found)]


class RunFolder:
    """A run folder read from outside, by artifact kind: `RunFolder(path).get(SeedScores)`.

    Where several stages made a kind (the CRF's and the walk's pseudo-masks), `stage`
    names one; otherwise the first in pipeline order."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def folder(self, kind: type[Artifact], stage: str | None = None) -> Path:
        folders = product_dirs(self.path, kind)
        if stage is not None:
            folders = [f for f in folders if f.name == stage]
        if not folders:
            raise PipelineError(f"{self.path}: no finished stage made {kind.KIND.replace('_', '-')}"
                                + (f" as '{stage}'" if stage else "") + "; run it first")
        return folders[0]

    def has(self, kind: type[Artifact]) -> bool:
        return bool(product_dirs(self.path, kind))

    def producers(self, kind: type[Artifact]) -> list[str]:
        """The finished stages that made `kind`, in pipeline order."""
        return [folder.name for folder in product_dirs(self.path, kind)]

    def get(self, kind: type[Artifact], stage: str | None = None):
        return kind.read(self.folder(kind, stage))

    def metrics(self, kind: type[Artifact], stage: str | None = None) -> dict:
        """The figures the producing stage measured (its manifest's metrics)."""
        return read_manifest(self.folder(kind, stage)).get("metrics", {})

    def settings(self, kind: type[Artifact], section: str, stage: str | None = None) -> dict:
        """A config section as the producing stage ran it (defaults filled in)."""
        return read_manifest(self.folder(kind, stage))["config"][section]

    def stage_record(self, stage: str) -> dict:
        """A finished stage's whole manifest (time, counts, settings); {} when not finished."""
        return read_manifest(self.path / stage) or {}
