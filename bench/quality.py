"""How well the GT-free quality score ranks pseudo-masks, and whether leaving the worst out helps.

    python bench/quality.py outputs/default                       # rank correlation only
    python bench/quality.py outputs/default --drop 0.1 0.2        # + segmenters trained without
                                                                  #   the lowest-scoring 10% / 20%

The first part reads the run's pseudo-mask data-set card (each image's quality score,
computed without GT) and the GT masks, and prints Spearman's rank correlation between
the score and each image's true mIoU, overall and by quartile of the score. The second
trains and scores the run's segmenter again with `train_segmenter.drop_lowest_quality`
set, in sibling run folders that link the run's stages up to refine_masks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.datasets.masks import read_mask  # noqa: E402
from pipeline.artifacts import Predictions, PreparedData, PseudoMasks, RunFolder, Segmenter  # noqa: E402
from pipeline.evaluation import image_miou  # noqa: E402

UPSTREAM = ("prepare", "train_localizer", "export_maps", "evaluate_maps", "refine_masks")


def rank_table(run: Path) -> None:
    folder = RunFolder(run)
    dataset, masks = folder.get(PreparedData).load(), folder.get(PseudoMasks)
    card = masks.card()
    quality = card["quality"]["per_image"]
    pairs = []
    for image_id, score in quality.items():
        gt = dataset.load_mask(image_id)
        if gt is None or score is None:
            continue
        miou = image_miou(read_mask(masks.mask_path(image_id)), gt, len(dataset.classes))
        if miou == miou:
            pairs.append((score, miou))
    if len(pairs) < 3:
        raise SystemExit(f"{run}: fewer than 3 pseudo-masks with GT; nothing to correlate")
    scores, mious = map(np.array, zip(*pairs))
    rho = spearmanr(scores, mious).statistic
    print(f"{run}: {len(pairs)} pseudo-masks with GT; quality score = {card['quality']['score'].split(':')[0]}")
    print(f"  Spearman rank correlation, quality score vs per-image mIoU: {rho:+.3f}")
    order = np.argsort(scores)
    print("  per-image mIoU by quartile of the score (lowest first): " + ", ".join(
        f"{100 * mious[q].mean():.1f}%" for q in np.array_split(order, 4)))


def segmenter_without_lowest(run: Path, config: str, share: float) -> float | None:
    out = run.parent / f"{run.name}_drop{int(round(100 * share))}"
    out.mkdir(exist_ok=True)
    for stage in UPSTREAM:
        if not (out / stage).exists():
            (out / stage).symlink_to((run / stage).resolve())
    cmd = [sys.executable, "run_pipeline.py", "--config", config, "--work-dir", str(out), "--stage",
           "train_segmenter,evaluate_segmenter", "--cfg-options", f"train_segmenter.drop_lowest_quality={share}"]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = RunFolder(out)
    miou = done.metrics(Predictions)["miou"]
    left_out = done.stage_record(done.producers(Segmenter)[0])["artifacts"]["left_out_low_quality"]
    print(f"  drop {100 * share:.0f}% ({left_out} pseudo-masks left out): segmenter mIoU {100 * miou:.1f}%  ({out})")
    return miou


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder with a finished refine_masks stage")
    parser.add_argument("--config", default=None, help="the run's config (default: <run>/config.py)")
    parser.add_argument("--drop", type=float, nargs="*", default=[], help="shares to leave out, e.g. 0.1 0.2")
    args = parser.parse_args()
    rank_table(args.run)
    if args.drop:
        config = args.config or str(args.run / "config.py")
        run = RunFolder(args.run)
        if run.has(Predictions):
            print(f"  drop 0% (the run itself): segmenter mIoU {100 * run.metrics(Predictions)['miou']:.1f}%")
        for share in args.drop:
            segmenter_without_lowest(args.run, config, share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
