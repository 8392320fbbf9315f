"""The pipeline's stages, one module each, IRN's `step/` style.

Each module declares its stage with `@register_stage` (pipeline/stage.py): its step,
the artifacts it consumes and produces, and its settings. Importing this package
registers them; `STAGES` lists them in pipeline order. A stage from outside the package
is one module that a config's `custom_imports` names.
"""

from pipeline.stage import stages_for

from . import (check_premise, evaluate_maps, evaluate_segmenter, export_maps, prepare, random_walk,  # noqa: F401
               refine_masks, report, train_boundary, train_cam_partner, train_localizer, train_segmenter)

STAGES = stages_for()
