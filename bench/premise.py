"""Does a data set pose the problem BAS solves? The BAS paper's exploratory experiment.

    python bench/premise.py outputs/default outputs/default_cam        # one or more run folders
    python bench/premise.py outputs/default --step 4 --range -16 40 --images 120

For each run's trained localizer, `pipeline.premise` grows every GT mask from eroded
(negative offsets) to dilated (positive), masks the class activation map with it and
measures the cross-entropy and the relative class activation (see that module). It
prints both curves per class (mean over objects), the verdict per class (observation 1:
CE < 0.1 at the GT mask; observation 2: the activation peaks within 8 px of the
boundary after rising by >= 0.2 from the most eroded mask), and draws the curves to
`<first run>/premise.png`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.artifacts import LocalizerWeights, PreparedData, Premise, RunFolder  # noqa: E402
from pipeline.models import load_trained_localizer  # noqa: E402
from pipeline.premise import premise_curves, premise_ids, verdict  # noqa: E402
from pipeline.report.plots import premise_plot  # noqa: E402


def _cell(value: float | None) -> str:
    return "     -" if value is None else f"{value:6.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders with a trained localizer")
    parser.add_argument("--step", type=int, default=4, help="pixels per erosion / dilation step")
    parser.add_argument("--range", type=int, nargs=2, default=(-16, 40), metavar=("FROM", "TO"))
    parser.add_argument("--images", type=int, default=120, help="the first N training images with GT")
    parser.add_argument("--from-saved", action="store_true",
                        help="read each run's check_premise/premise.json instead of recomputing the curves")
    args = parser.parse_args()
    offsets = list(range(args.range[0], args.range[1] + 1, args.step))
    results = {}
    for run in args.runs if args.from_saved else ():
        saved = json.loads(RunFolder(run).get(Premise).curves_path.read_text())
        offsets = saved["offsets"]
        results[f"{run.parent.name}/{run.name} ({saved['method']})"] = saved["curves"]
    for run in () if args.from_saved else args.runs:
        folder = RunFolder(run)
        dataset = folder.get(PreparedData).load()
        localizer = folder.get(LocalizerWeights)
        model, method = load_trained_localizer(localizer.model_path)
        split = localizer.split
        ids, _ = premise_ids(dataset, split, args.images)
        results[f"{run.name} ({method})"] = premise_curves(model, dataset, ids, offsets)
    header = "offset px " + " ".join(f"{o:>6d}" for o in offsets)
    for name, per_class in results.items():
        print(f"\n{name}: mean over objects; negative offset = eroded, 0 = the GT mask")
        print("  " + header)
        for cls, curve in per_class.items():
            print(f"  {cls:<10}CE  " + " ".join(_cell(v) for v in curve["ce"]))
            print(f"  {'':<10}act " + " ".join(_cell(v) for v in curve["activation"]))
        print("  verdict: class, CE at GT, activation peak offset, rise to GT, observation 1 (partial mask, the "
              "paper's reading), observation 1 (at the GT mask), observation 2")
        verdicts = verdict(offsets, per_class)
        for cls, v in verdicts.items():
            print(f"    {cls:<10} {v['ce_at_gt']:5.2f} {v['activation_peak_offset']:+4d} px "
                  f"{v['activation_rise_to_gt']:+5.2f}  {'holds' if v['observation_1_partial'] else 'fails':<6} "
                  f"{'holds' if v['observation_1'] else 'fails':<6} {'holds' if v['observation_2'] else 'fails'}")
        print(f"  holds for {sum(v['observation_1_partial'] for v in verdicts.values())} / "
              f"{sum(v['observation_1'] for v in verdicts.values())} / "
              f"{sum(v['observation_2'] for v in verdicts.values())} of {len(verdicts)} classes")
    out = args.runs[0] / "premise.png"
    premise_plot(offsets, results, out)
    print(f"\nfigure: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
