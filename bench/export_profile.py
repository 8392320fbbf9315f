"""Where export_maps spends its time, per suspect, and a torch.profiler table of one batch.

    python bench/export_profile.py --run outputs/real_voc20/bas_seed0 [--batches 16] [--device cuda]

On a finished run (its prepare and train_localizer), for the run's export settings, in two
batchings of exact-size batches: one image a forward, and `--batch-size` images (the
export's own batches). For each it times, over the first
`--batches` batches: the DataLoader's wait (decoding in workers), the network and the
per-scale / per-class resizing (`batch_class_maps`, synchronised), the copy to float16,
and writing the files (`save_npz`, what the writer thread does); it counts the distinct
input shapes met and the time of batches whose shapes were new against those seen
before (per-shape costs: cuDNN plan search, oneDNN primitive creation, allocator growth).
Then it profiles one batch of each kind with torch.profiler and prints the top entries.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.artifacts import ClassMaps, LocalizerWeights, PreparedData, RunFolder  # noqa: E402
from pipeline.atomic import save_npz  # noqa: E402
from pipeline.maps import ImageBatches, batch_class_maps, size_batches  # noqa: E402
from pipeline.models import load_trained_localizer  # noqa: E402
from pipeline.precision import autocast  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def input_shapes(size, scales) -> set:
    return {(int(size[0] * s), int(size[1] * s)) for s in scales}


def measure(model, dataset, batches, settings, device, amp, out: Path) -> dict:
    loader = DataLoader(ImageBatches(dataset, batches), batch_size=None,
                        num_workers=settings.get("num_workers", 2), pin_memory=device.type == "cuda")
    times = {"loader_wait": 0.0, "network_and_resizing": 0.0, "to_float16": 0.0, "write_files": 0.0}
    seen, new_shape_s, old_shape_s = set(), [], []
    t_wait = time.perf_counter()
    for ids, images in loader:
        times["loader_wait"] += time.perf_counter() - t_wait
        images = images.to(device)
        shapes = input_shapes(images.shape[-2:], settings["scales"])
        t0 = time.perf_counter()
        with autocast(device, amp):
            maps = batch_class_maps(model, images, [dataset.labels[i] for i in ids], tuple(settings["scales"]),
                                    settings["flip"])
        sync(device)
        t1 = time.perf_counter()
        arrays = [m.cpu().numpy().astype(np.float16) for m in maps]
        t2 = time.perf_counter()
        for i, array in zip(ids, arrays):
            save_npz(out / f"{i}.npz", False, maps=array, classes=np.asarray(dataset.labels[i], dtype=np.int16))
        t3 = time.perf_counter()
        times["network_and_resizing"] += t1 - t0
        times["to_float16"] += t2 - t1
        times["write_files"] += t3 - t2
        (old_shape_s if shapes <= seen else new_shape_s).append((t1 - t0) / len(ids))
        seen |= shapes
        t_wait = time.perf_counter()
    images = sum(len(b) for b in batches)
    return {"images": images, "batches": len(batches), "distinct_input_shapes": len(seen),
            "seconds": {k: round(v, 2) for k, v in times.items()},
            "images_per_s": round(images / sum(times.values()), 2),
            "network_s_per_image_new_shapes": round(float(np.mean(new_shape_s)), 4) if new_shape_s else None,
            "network_s_per_image_seen_shapes": round(float(np.mean(old_shape_s)), 4) if old_shape_s else None}


def profile_batch(model, dataset, ids, settings, device, amp) -> str:
    from torch.profiler import ProfilerActivity, profile

    images = ImageBatches(dataset, [ids])[0][1].to(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof, autocast(device, amp):
        batch_class_maps(model, images, [dataset.labels[i] for i in ids], tuple(settings["scales"]),
                         settings["flip"])
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=12)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", default="bf16", help="CUDA autocast: bf16, fp16 or none")
    args = parser.parse_args()
    device = torch.device(args.device)
    amp = None if args.amp == "none" or device.type != "cuda" else args.amp
    run = RunFolder(args.run)
    settings = run.settings(ClassMaps, "export_maps") if run.has(ClassMaps) else {"scales": (1.0, 0.5, 1.5, 2.0),
                                                                                  "flip": True}
    settings["scales"] = tuple(settings["scales"])
    dataset = run.get(PreparedData).load()
    ids = dataset.split(settings.get("split", "train"))
    model, method = load_trained_localizer(run.get(LocalizerWeights).model_path, device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    print(f"export profile: {args.run} ({method}), {device}, {amp or 'fp32'}, scales {settings['scales']}, "
          f"flip {settings['flip']}, threads {torch.get_num_threads()}")
    results = {}
    for batch_size in sorted({1, args.batch_size}):
        batches = size_batches(dataset, ids, batch_size)[:args.batches]
        with tempfile.TemporaryDirectory() as tmp:
            results[batch_size] = measure(model, dataset, batches, settings, device, amp, Path(tmp))
        print(f"  batch {batch_size}: {json.dumps(results[batch_size])}")
        print(profile_batch(model, dataset, batches[-1], settings, device, amp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
