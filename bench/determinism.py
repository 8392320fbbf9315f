"""What makes the default run's figures vary between runs and machines?

    python bench/determinism.py [--config tests/tiny_config.py] [--out outputs/determinism]

Runs prepare, train_localizer and export_maps of a config several times in fresh
processes, each under one variation of the environment, and compares every run's
exported maps and final training loss with the first's (the baseline: this machine,
its default threads and instruction set):

- `same`: the baseline again (is the run deterministic at all on one machine?);
- `threads=1`: one intra-op thread instead of the default (reductions split differently);
- `isa=avx2`: oneDNN limited to AVX2 kernels (`ONEDNN_MAX_CPU_ISA`), what a machine
  without AVX-512 runs; `mkl=compatible`: MKL's conditional numerical reproducibility
  (`MKL_CBWR=COMPATIBLE`), its slowest, most portable code path.

A variation that changes the maps is one another machine may bring with it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.artifacts import ClassMaps, LocalizerWeights, RunFolder  # noqa: E402

VARIATIONS = {
    "same": {},
    "threads=1": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "isa=avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "mkl=compatible": {"MKL_CBWR": "COMPATIBLE"},
}


def run(config: str, folder: Path, env: dict) -> None:
    cmd = [sys.executable, "run_pipeline.py", "--config", config, "--work-dir", str(folder),
           "--stage", "prepare,train_localizer,export_maps"]
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def compare(base: Path, other: Path) -> dict:
    largest, differing = 0.0, 0
    first, second = RunFolder(base).get(ClassMaps), RunFolder(other).get(ClassMaps)
    files = sorted(first.maps_dir.glob("*.npz"))
    for path in files:
        a, b = first.read_image(path.stem)[0], second.read_image(path.stem)[0]
        d = float(np.abs(a - b).max(initial=0.0))
        largest, differing = max(largest, d), differing + (d > 0)
    return {"maps_differing": differing, "maps": len(files), "largest_map_difference": largest,
            "final_loss": RunFolder(other).metrics(LocalizerWeights)["final_loss"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tests/tiny_config.py")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "determinism")
    args = parser.parse_args()
    base = args.out / "baseline"
    run(args.config, base, {})
    print(f"determinism of {args.config} (prepare, train_localizer, export_maps), {os.cpu_count()} cores")
    for name, env in VARIATIONS.items():
        folder = args.out / name.replace("=", "_")
        run(args.config, folder, env)
        print(f"  {name:<16} {json.dumps(compare(base, folder))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
