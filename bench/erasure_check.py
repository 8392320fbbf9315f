"""The GT-free erasure check (`pipeline/erasure_check.py`) on finished BAS runs, with each
class's seed IoU beside it: does the flag point at the classes that failed?

    python bench/erasure_check.py outputs/probe24/bas_seed* [--json out.json]

Per run and class: the mean L_bas of the trained localizer in eval mode on its training
images (the score left once the class's own masks are erased, relative to before), the
check's verdict (masks miss their objects above `MASKS_MISS_ABOVE`), and the class's seed
IoU from the run's evaluate_maps (GT; only to judge the check, which never reads it). The
same check runs inside every BAS run's check_premise stage; this script re-runs it on runs
made before the stage had it, at the scale their check_premise ran at.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.artifacts import LocalizerWeights, PreparedData, Premise, RunFolder, SeedScores  # noqa: E402
from pipeline.erasure_check import (MASKS_MISS_ABOVE, background_activation_per_class,  # noqa: E402
                                    classes_whose_masks_miss)
from pipeline.log import progress  # noqa: E402


def check_run(path: Path) -> dict:
    from pipeline.models import load_trained_localizer

    run = RunFolder(path)
    dataset, weights = run.get(PreparedData).load(), run.get(LocalizerWeights)
    scale = run.settings(Premise, "check_premise")["scale"]
    model, _ = load_trained_localizer(weights.model_path)
    ids = dataset.split(weights.split)
    per_class = background_activation_per_class(model, dataset, progress(ids, f"{path.name}: erasure check"), scale)
    seed_iou = run.metrics(SeedScores).get("per_class_iou", {})
    return {"run": f"{path.parent.name}/{path.name}", "scale": scale, "per_class": per_class, "masks_miss_objects":
            classes_whose_masks_miss(per_class), "seed_iou": {name: seed_iou.get(name) for name in per_class}}


def run_line(result: dict) -> str:
    cells = []
    for name, s in result["per_class"].items():
        iou = result["seed_iou"][name]
        flag = " MISS" if name in result["masks_miss_objects"] else ""
        cells.append(f"{name} {100 * s['mean']:.0f}%{flag} (IoU {'-' if iou is None else f'{100 * iou:.0f}'})")
    return f"{result['run']}: " + ", ".join(cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    results = [check_run(path) for path in args.runs]
    lines = [f"score left after erasing each class's masks (mean L_bas, eval mode; MISS above "
             f"{100 * MASKS_MISS_ABOVE:.0f} %), seed IoU from GT beside it"] + [run_line(r) for r in results]
    print("\n".join(lines))
    if args.json:
        from bench.seeds import commit, machine
        from pipeline.versions import package_versions

        args.json.write_text(json.dumps({
            "runs": results, "lines": lines, "command": "python bench/erasure_check.py " + " ".join(sys.argv[1:]),
            "machine": machine(), "commit": commit(), "package_versions": package_versions()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
