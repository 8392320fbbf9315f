"""The pipeline's stages, in order. Each is one module with one entry function.

A new stage is one module here plus one line below: its upstream stages and the
config sections it reads (its fingerprint hashes exactly those).
"""

from pipeline.runner import Stage

STAGES = [
    Stage(
        name="prepare",
        entry="stages.prepare:prepare",
        reads=("dataset",),
        description="lists, image-level labels and GT masks in the prepared-data-set format",
    ),
]
