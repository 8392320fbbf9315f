"""Seconds per image of IRN's random walk (`pipeline.relations.random_walk`) on random
maps and boundaries, at the stride-4 grid of a VOC-size image (94 x 125) and of the
default's images (32 x 40), with IRN's radius 5, beta 10 and 2^8 steps.

    python bench/bench_random_walk.py [--classes 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.relations import random_walk  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=3, help="class maps per image")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"random walk on {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}, "
          f"{torch.get_num_threads()} threads, {args.classes} classes, radius 5, beta 10, 256 steps")
    for name, (h, w) in {"VOC-size image (grid 94 x 125)": (94, 125), "default image (grid 32 x 40)": (32, 40)}.items():
        torch.manual_seed(0)
        boundary, maps = torch.rand(h, w, device=device), torch.rand(args.classes, h, w, device=device)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            random_walk(maps, boundary, radius=5, beta=10.0, exp_times=8)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        print(f"  {name:<32} {min(times):.3f} s (best of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
