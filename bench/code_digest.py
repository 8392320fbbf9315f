"""What the code-change check costs at start-up: the source digests of every stage,
in a fresh process (each stage's module and the project modules it imports).

    python bench/code_digest.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

t0 = time.perf_counter()
from pipeline.source_hash import project_modules, source_digest  # noqa: E402
from pipeline.stage import stages_for  # noqa: E402

t1 = time.perf_counter()
modules = {m for s in stages_for() for m in project_modules(s.module)}
digests = {s.name: source_digest(s.module) for s in stages_for()}
t2 = time.perf_counter()
print(f"{len(stages_for())} stages, {len(modules)} project modules read and hashed in {1000 * (t2 - t1):.0f} ms "
      f"(imports before: {1000 * (t1 - t0):.0f} ms)")
