#!/usr/bin/env python
"""Localizer throughput: train steps of BAS vs CAM at the same batch and input size,
export (multi-scale + flip) images per second, and peak memory.

    python bench/bench_localizer.py                       # CPU-sized defaults
    python bench/bench_localizer.py --depth 50 --batch 16 --size 448 --export-size 500 375

Runs on CUDA when available (bf16 autocast and channels_last, as the stage does).
Each measurement runs in its own process so that peak memory is its own.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import torch


def measure_train(method: str, args) -> dict:
    from pipeline.models import build_localizer
    from pipeline.training.optim import build_sgd

    torch.manual_seed(0)
    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if cuda else "cpu")
    model, weights = build_localizer(dict(type=method, backbone=dict(depth=args.depth, output_stride=16)),
                                     args.classes)
    model = model.to(device).train()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_sgd(model, model.heads(), 0.005, 10, 0.9, 1e-4)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    labels = (torch.rand(args.batch, args.classes, device=device) < 0.15).float()
    labels[:, 0] = 1.0

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            terms = model(x, labels)
        loss = sum(w * terms[k].float() for k, w in weights.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / args.steps
    return {"images_per_s": args.batch / seconds, "step_s": seconds, **_peak(cuda)}


def measure_export(args) -> dict:
    from pipeline.models import build_localizer
    from pipeline.maps import class_maps

    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if cuda else "cpu")
    model = build_localizer(dict(type="bas", backbone=dict(depth=args.depth, output_stride=16)),
                            args.classes)[0].to(device).eval()
    w, h = args.export_size
    image = torch.randn(3, h, w, device=device)
    scales = tuple(args.scales)
    class_maps(model, image, [1, 2], scales, True)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.export_images):
        class_maps(model, image, [1, 2], scales, True)
    if cuda:
        torch.cuda.synchronize()
    return {"images_per_s": args.export_images / (time.perf_counter() - t0), **_peak(cuda)}


def measure_export_stage(args, workers: int) -> dict:
    """The export loop on JPEG files: decode (in `workers` DataLoader workers, or in the
    loop), maps at every scale + flip, and the compressed npz written per image."""
    import tempfile
    from pathlib import Path

    import numpy as np
    from PIL import Image
    from torch.utils.data import DataLoader

    from pipeline.atomic import save_npz
    from pipeline.models import build_localizer
    from pipeline.maps import ImageTensors, class_maps

    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if cuda else "cpu")
    model = build_localizer(dict(type="bas", backbone=dict(depth=args.depth, output_stride=16)),
                            args.classes)[0].to(device).eval()
    w, h = args.export_size
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        ids = [f"img{i}" for i in range(args.export_images)]
        for image_id in ids:
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{image_id}.jpg")

        class Files:
            @staticmethod
            def image_path(image_id):
                return folder / f"{image_id}.jpg"

        class_maps(model, torch.zeros(3, h, w, device=device), [1, 2], tuple(args.scales), True)  # warm-up
        t0 = time.perf_counter()
        loader = DataLoader(ImageTensors(Files, ids), batch_size=None, num_workers=workers, pin_memory=cuda)
        for image_id, image in loader:
            maps = class_maps(model, image.to(device, non_blocking=True), [1, 2], tuple(args.scales), True)
            save_npz(folder / f"{image_id}.npz", maps=maps.cpu().numpy().astype(np.float16))
        return {"images_per_s": args.export_images / (time.perf_counter() - t0)}


def _peak(cuda: bool) -> dict:
    if cuda:
        return {"peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20}
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _in_child(fn, *a):
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="training input side")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--export-size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"))
    parser.add_argument("--export-images", type=int, default=3)
    parser.add_argument("--scales", type=float, nargs="+", default=(1.0, 0.5, 1.5, 2.0))
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even if CUDA is available")
    args = parser.parse_args()

    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() and not args.cpu else \
        f"cpu ({torch.get_num_threads()} threads)"
    print(f"device {device}; ResNet-{args.depth}, output stride 16, batch {args.batch}, input {args.size}px")
    results = {m: _in_child(measure_train, m, args) for m in ("cam", "bas")}
    for method, r in results.items():
        mem = ", ".join(f"{k} {v:.0f}" for k, v in r.items() if k.startswith("peak"))
        print(f"train {method}: {r['images_per_s']:8.1f} images/s  ({r['step_s'] * 1000:.0f} ms/step, {mem})")
    print(f"train BAS / CAM step time: {results['bas']['step_s'] / results['cam']['step_s']:.2f}x")
    e = _in_child(measure_export, args)
    mem = ", ".join(f"{k} {v:.0f}" for k, v in e.items() if k.startswith("peak"))
    print(f"export {args.export_size[0]}x{args.export_size[1]}, scales {tuple(args.scales)} + flip: "
          f"{e['images_per_s']:.2f} images/s ({mem})")
    for workers in (0, 2):
        r = measure_export_stage(args, workers)  # in this process: pool workers cannot start DataLoader workers
        print(f"export loop on JPEG files (decode, maps, npz), {workers} decoding workers: "
              f"{r['images_per_s']:.2f} images/s")


if __name__ == "__main__":
    main()
