"""Does the dense CRF help on a run's maps? Seed mIoU against pseudo-mask mIoU for CRF settings.

    python bench/crf_quality.py outputs/default
    python bench/crf_quality.py outputs/default --images 120 --jobs 2

Reads a run's exported maps, its background threshold (evaluate_maps) and its GT, and
scores the seeds and the CRF-refined masks of each setting below on the same images:
the CRF parameter sets (a) labels and (b) probabilities of docs/method.md, each with
the kernel widths as given (tuned for VOC's ~500 px images) and scaled to the image
size (`crf.reference_size=500`). Settings chosen from this table are chosen on GT:
say so when you report them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.artifacts import ClassMaps, PreparedData, RunFolder, SeedScores  # noqa: E402
from pipeline.crf import CRFParams  # noqa: E402
from pipeline.evaluation import MaskScore  # noqa: E402
from pipeline.pseudo_masks import ConfidentSplit, PseudoMaskRecipe, pseudo_mask, seed_mask  # noqa: E402

SETTINGS = {
    "(a) labels": dict(unary="labels", gt_prob=0.7, gaussian=(3, 3), bilateral=(50, 5, 10)),
    "(a) labels, scaled": dict(unary="labels", gt_prob=0.7, gaussian=(3, 3), bilateral=(50, 5, 10),
                               reference_size=500),
    "(b) probabilities": dict(unary="probabilities", gaussian=(3, 3), bilateral=(80, 13, 10)),
    "(b) probabilities, scaled": dict(unary="probabilities", gaussian=(3, 3), bilateral=(80, 13, 10),
                                      reference_size=500),
}


def one(image: np.ndarray, maps: np.ndarray, classes: np.ndarray, gt: np.ndarray, threshold: float):
    out = {}
    for name, crf in [("seeds", None), *SETTINGS.items()]:
        recipe = PseudoMaskRecipe(background="fixed", threshold=threshold, alpha=4.0,
                                  crf=CRFParams(**(crf or {})), confident=ConfidentSplit())
        out[name] = seed_mask(maps, classes, recipe) if crf is None else pseudo_mask(image, maps, classes, recipe)
    return out, gt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--images", type=int, default=None, help="the first N scored images (default: all)")
    parser.add_argument("--jobs", type=int, default=-1)
    args = parser.parse_args()
    run = RunFolder(args.run)
    dataset, class_maps = run.get(PreparedData).load(), run.get(ClassMaps)
    threshold = run.get(SeedScores).threshold
    ids = [i for i in dataset.split(class_maps.split) if dataset.mask_path(i) is not None][:args.images]

    def load(image_id):
        maps, classes = class_maps.read_image(image_id)
        return np.array(dataset.load_image(image_id)), maps, classes, dataset.load_mask(image_id)

    results = Parallel(n_jobs=args.jobs)(delayed(one)(*load(i), threshold) for i in ids)
    scores = {name: MaskScore(len(dataset.classes)) for name in ["seeds", *SETTINGS]}
    for masks, gt in results:
        for name, mask in masks.items():
            scores[name].add(mask, gt)
    seed = scores["seeds"].summary(dataset.classes)["miou"]
    print(f"{args.run}: {len(ids)} images with GT, t = {threshold:.3f}")
    print(f"  {'seeds':<30} {100 * seed:5.1f}%")
    for name in SETTINGS:
        miou = scores[name].summary(dataset.classes)["miou"]
        print(f"  {'CRF ' + name:<30} {100 * miou:5.1f}%  ({100 * (miou - seed):+.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
