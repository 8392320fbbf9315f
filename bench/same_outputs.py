"""Do two run folders hold the same outputs? (a refactor must leave the default run's numbers alone)

    python bench/same_outputs.py outputs/default_before outputs/default_after \
        [--rename train_localizer:backbone.to_layer3.=backbone.to_mid. ...]

For every stage folder in both runs: each output file compared by content (maps `.npz`
by their arrays, masks `.png` by their pixels, trained weights `model.pth` tensor by tensor,
everything else byte for byte; manifests, logs, intermediate checkpoints and the report's page, which hold times and paths, left out), and the
manifest's metrics compared value for value (timings and throughput left out). `--rename
STAGE:OLD=NEW` maps the first run's weight names in that stage onto the second's (a module
renamed between them). Prints one line per stage and exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SKIPPED_FILES = re.compile(r"(manifest\.json|\.in_progress\.json|\.log|last\.pth|backbone_init\.pth|index\.html|config\.py|/work/|"
                           r"segmenter_config\.py|backbone_init|dataset_card\.json|README\.md|\.lock)")
TIMING_KEYS = re.compile(r"(seconds|per_s|_s$|time|throughput|duration|started|finished|attempt)")


RENAMES: dict[str, list[tuple[str, str]]] = {}  # stage -> [(old, new)]
ACTIVE: list[tuple[str, str]] = []  # the renames of the stage being compared


def same_file(a: Path, b: Path) -> bool:
    if a.suffix == ".npz":
        with np.load(a) as x, np.load(b) as y:
            return sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)
    if a.suffix == ".pth":  # trained weights, tensor by tensor
        import torch

        x, y = (torch.load(p, map_location="cpu", weights_only=False) for p in (a, b))
        return same_state(x, y)
    if a.suffix == ".png":
        return np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    return a.read_bytes() == b.read_bytes()


def same_state(x, y) -> bool:
    import torch

    if isinstance(x, dict):
        x = {_renamed(k): v for k, v in x.items()}
        return isinstance(y, dict) and x.keys() == y.keys() and all(same_state(x[k], y[k]) for k in x)
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and torch.equal(x, y)
    return x == y


def _renamed(key):
    for old, new in ACTIVE:
        key = key.replace(old, new) if isinstance(key, str) else key
    return key


def metrics_without_timings(value):
    if isinstance(value, dict):
        return {k: metrics_without_timings(v) for k, v in value.items() if not TIMING_KEYS.search(str(k))}
    if isinstance(value, list):
        return [metrics_without_timings(v) for v in value]
    return value


def compare_stage(a: Path, b: Path) -> tuple[int, list[str]]:
    """(files compared, what differs)."""
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()
                   and not SKIPPED_FILES.search("/" + p.relative_to(a).as_posix()))
    differ = [f for f in files if not (b / f).is_file() or not same_file(a / f, b / f)]
    extra = [p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()
             and not SKIPPED_FILES.search("/" + p.relative_to(b).as_posix()) and not (a / p.relative_to(b)).is_file()]
    left, right = (json.loads((x / "manifest.json").read_text()) for x in (a, b))
    if metrics_without_timings(left["metrics"]) != metrics_without_timings(right["metrics"]):
        differ.append("manifest metrics")
    return len(files), differ + [f"only in {b.parent.name}: {f}" for f in extra]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--rename", action="append", default=[], metavar="STAGE:OLD=NEW",
                        help="a weight-name prefix of STAGE renamed between the runs (repeatable)")
    args = parser.parse_args()
    for rename in args.rename:
        stage, _, pair = rename.partition(":")
        RENAMES.setdefault(stage, []).append(tuple(pair.split("=", 1)))
    stages = sorted({p.parent.name for p in args.first.glob("*/manifest.json")}
                    & {p.parent.name for p in args.second.glob("*/manifest.json")},
                    key=lambda s: max(json.loads((run / s / "manifest.json").read_text()).get("step", 0)
                                      for run in (args.first, args.second)))
    differs = False
    for stage in stages:
        ACTIVE[:] = RENAMES.get(stage, [])
        count, differ = compare_stage(args.first / stage, args.second / stage)
        differs |= bool(differ)
        print(f"  {stage:<20} {count:>5} files  {'identical' if not differ else 'DIFFERS: ' + ', '.join(differ[:5])}")
    print("same outputs" if not differs else "outputs differ")
    return int(differs)


if __name__ == "__main__":
    sys.exit(main())
