"""The pipeline's stages, in order. Each is one module with one entry function.

A new stage is one module here plus one `Stage(...)` entry below: its upstream stages,
the config sections it reads (its fingerprint hashes exactly those) and their settings
dataclasses. A stage that writes a pseudo-mask data set says `makes_pseudo_masks=True`:
`train_segmenter` then lists it upstream and `train_segmenter.pseudo_masks` may name it.
"""

from pathlib import Path

from pipeline.runner import Stage, read_manifest


def _fuses_partner(cfg) -> bool:
    return cfg.get("export_maps", {}).get("fuse_cam") == "partner"


def _walks(cfg) -> bool:
    return cfg.get("train_segmenter", {}).get("pseudo_masks") == "random_walk"


TRAIN = "pipeline.training.loop:TrainSettings"


def _external_cam_run(cfg) -> dict:
    """A CAM run folder fused from outside (`export_maps.fuse_cam=<folder>`): its model's run id."""
    fuse = cfg.get("export_maps", {}).get("fuse_cam")
    if fuse in (None, "partner"):
        return {}
    manifest = read_manifest(Path(fuse) / "train_localizer")
    return {"fuse_cam_run": str(fuse), "run_id": manifest["run_id"] if manifest else None}


STAGES = [
    Stage(
        name="prepare",
        entry="stages.prepare:prepare",
        reads=("dataset",),
        description="lists, image-level labels and GT masks in the prepared-data-set format",
        execution_keys=("dataset.n_jobs",),
    ),
    Stage(
        name="train_localizer",
        entry="stages.train_localizer:train_localizer",
        upstream=("prepare",),
        reads=("localizer", "train_localizer"),
        settings={"train_localizer": TRAIN},
        description="the BAS localizer (or the CAM baseline) trained on image-level labels",
        distributed=True,
        execution_keys=("train_localizer.num_workers",),
    ),
    Stage(
        name="check_premise",
        entry="stages.check_premise:check_premise",
        upstream=("prepare", "train_localizer"),
        reads=("check_premise",),
        settings={"check_premise": "pipeline.premise:PremiseSettings"},
        description="the BAS paper's premise check on the trained classifier (where GT exists)",
    ),
    Stage(
        name="train_cam_partner",
        entry="stages.train_cam_partner:train_cam_partner",
        upstream=("prepare",),
        reads=("cam_partner", "train_cam_partner"),
        settings={"train_cam_partner": TRAIN},
        description="the CAM whose maps BAS's are fused with at export, as the reference does",
        distributed=True,
        execution_keys=("train_cam_partner.num_workers",),
        enabled=_fuses_partner,
    ),
    Stage(
        name="export_maps",
        entry="stages.export_maps:export_maps",
        upstream=("prepare", "train_localizer", "train_cam_partner"),
        reads=("export_maps",),
        settings={"export_maps": "stages.export_maps:ExportSettings"},
        external=_external_cam_run,
        execution_keys=("export_maps.num_workers", "export_maps.compress"),
        description="class-wise foreground maps, multi-scale + flip, one npz per image",
        distributed=True,
    ),
    Stage(
        name="evaluate_maps",
        entry="stages.evaluate_maps:evaluate_maps",
        upstream=("prepare", "export_maps"),
        reads=("evaluate_maps",),
        settings={"evaluate_maps": "stages.evaluate_maps:MapEvalSettings"},
        description="seed mIoU against GT over a background threshold sweep",
        headline=("seed_miou", "seed mIoU"),
        distributed=True,  # sharded: each process does every world_size-th image
    ),
    Stage(
        name="refine_masks",
        entry="stages.refine_masks:refine_masks",
        upstream=("prepare", "export_maps", "evaluate_maps"),
        reads=("refine_masks",),
        settings={"refine_masks": "stages.refine_masks:RefineSettings"},
        makes_pseudo_masks=True,
        description="dense-CRF refinement into the pseudo-mask data set, scored against GT",
        execution_keys=("refine_masks.n_jobs", "refine_masks.backend"),
        headline=("miou", "pseudo-mask mIoU"),
        distributed=True,  # sharded: each process does every world_size-th image
    ),
    Stage(
        name="train_boundary",
        entry="stages.train_boundary:train_boundary",
        upstream=("prepare", "train_localizer", "refine_masks"),
        reads=("boundary_net", "train_boundary"),
        settings={"boundary_net": "stages.train_boundary:BoundaryNetSettings", "train_boundary": TRAIN},
        description="IRN's class-boundary branch, trained on the relations the pseudo-masks give",
        distributed=True,
        execution_keys=("train_boundary.num_workers",),
        enabled=_walks,
    ),
    Stage(
        name="random_walk",
        entry="stages.random_walk:random_walk",
        upstream=("prepare", "export_maps", "evaluate_maps", "refine_masks", "train_boundary"),
        reads=("random_walk",),
        settings={"random_walk": "stages.random_walk:RandomWalkSettings"},
        makes_pseudo_masks=True,
        description="IRN's random walk over the boundary net's affinities: a second pseudo-mask data set",
        headline=("miou", "random-walk mIoU"),
        enabled=_walks,
        distributed=True,  # sharded: each process does every world_size-th image
    ),
    Stage(
        name="train_segmenter",
        entry="stages.train_segmenter:train_segmenter",
        upstream=("prepare", "refine_masks", "random_walk"),  # PSEUDO_MASK_PRODUCERS, checked below
        reads=("segmenter", "train_segmenter"),
        settings={"segmenter": "pipeline.segmenter.mmseg_config:SegmenterModel",
                  "train_segmenter": "pipeline.segmenter.mmseg_config:SegmenterSchedule"},
        description="mmseg DeepLab trained on the pseudo-masks (mmengine Runner, resumable)",
        distributed=True,
        execution_keys=("train_segmenter.num_workers", "train_segmenter.log_interval",
                        "train_segmenter.checkpoint_interval"),
    ),
    Stage(
        name="evaluate_segmenter",
        entry="stages.evaluate_segmenter:evaluate_segmenter",
        upstream=("prepare", "train_segmenter"),
        reads=("evaluate_segmenter",),
        settings={"evaluate_segmenter": "stages.evaluate_segmenter:SegEvalSettings"},
        execution_keys=("evaluate_segmenter.workers",),
        description="segmenter mIoU on the val GT (multi-scale, flip, CRF as configured), palette PNGs",
        headline=("miou", "segmenter val mIoU"),
        distributed=True,  # sharded: each process does every world_size-th image
    ),
    Stage(
        name="report",
        entry="stages.report:report",
        upstream=("prepare", "export_maps", "evaluate_maps", "refine_masks"),
        optional_upstream=("check_premise", "random_walk", "evaluate_segmenter"),
        reads=("report",),
        settings={"report": "stages.report:ReportSettings"},
        description="one HTML page: stages, the mIoU chain, the threshold sweep, image galleries",
    ),
]

PSEUDO_MASK_PRODUCERS = tuple(s.name for s in STAGES if s.makes_pseudo_masks)
SETTINGS = {section: target for s in STAGES for section, target in s.settings.items()}
assert set(PSEUDO_MASK_PRODUCERS) <= set(next(s for s in STAGES if s.name == "train_segmenter").upstream)
