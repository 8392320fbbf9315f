#!/usr/bin/env python
"""Dense-CRF and evaluator speed at VOC size.

    python bench/bench_crf.py [--size 500 375] [--images 8]

Prints CRF seconds per image with 21 labels vs an image's own labels (3), the
refinement's scaling from 1 to all cores (joblib loky), and evaluator throughput.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from joblib import Parallel, delayed
from scipy import ndimage

from pipeline.crf import CRFParams, dense_crf
from pipeline.evaluation import MaskScore, SeedSweep


def scene(rng, w, h, labels):
    image = ndimage.zoom(rng.integers(0, 255, (8, 8, 3)).astype(np.float32), (h / 8, w / 8, 1), order=1)
    scores = ndimage.gaussian_filter(rng.random((labels, h, w)).astype(np.float32), (0, 8, 8))
    return np.clip(image, 0, 255).astype(np.uint8)[:h, :w], scores


def crf_seconds(w, h, labels, repeats=3) -> float:
    rng = np.random.default_rng(0)
    image, scores = scene(rng, w, h, labels)
    t0 = time.perf_counter()
    for _ in range(repeats):
        dense_crf(image, scores, CRFParams())
    return (time.perf_counter() - t0) / repeats


def one(seed, w, h):
    image, scores = scene(np.random.default_rng(seed), w, h, 3)
    dense_crf(image, scores, CRFParams())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"))
    parser.add_argument("--images", type=int, default=8, help="images for the scaling run")
    args = parser.parse_args()
    w, h = args.size

    print(f"dense CRF, {w}x{h}, 10 iterations, probabilities unary, bilateral 80/13/10:")
    full, own = crf_seconds(w, h, 21), crf_seconds(w, h, 3)
    print(f"  21 labels: {full:.2f} s/image   3 labels (background + 2 classes): {own:.2f} s/image "
          f"({full / own:.1f}x faster)")

    cores = os.cpu_count() or 1
    base = None
    for n_jobs in sorted({1, *(c for c in (2, 4, 8, 16, 32) if c <= cores), cores}):
        t0 = time.perf_counter()
        Parallel(n_jobs=n_jobs, backend="loky")(delayed(one)(i, w, h) for i in range(args.images))
        rate = args.images / (time.perf_counter() - t0)
        base = base or rate
        print(f"  n_jobs={n_jobs:<3} {rate:6.2f} images/s  ({rate / base:.2f}x)")

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 21, (h, w)).astype(np.uint8)
    pred = rng.integers(0, 21, (h, w)).astype(np.uint8)
    score, n = MaskScore(21), 50
    t0 = time.perf_counter()
    for _ in range(n):
        score.add(pred, gt)
    print(f"evaluator (confusion matrix, 21 classes): {n / (time.perf_counter() - t0):.0f} images/s")
    maps = rng.random((2, h, w)).astype(np.float32)
    sweep = SeedSweep(21, np.round(np.arange(0.05, 0.605, 0.01), 3))
    t0 = time.perf_counter()
    for _ in range(n):
        sweep.add(maps, np.array([3, 9]), gt)
    print(f"seed sweep (56 thresholds at once): {n / (time.perf_counter() - t0):.0f} images/s")


if __name__ == "__main__":
    main()
