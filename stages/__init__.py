"""The pipeline's stages, one module each, IRN's `step/` style.

Each module declares its stage with `@register_stage` (pipeline/stage.py): its step,
the artifacts it consumes and produces, and its settings. Importing this package
imports every module in it, so a new stage is one file here; `STAGES` lists them in
pipeline order. A stage from outside the package is one module that a config's
`custom_imports` names.
"""

import importlib
import pkgutil

from pipeline.stage import stages_for

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # each module registers its stage

STAGES = stages_for()
