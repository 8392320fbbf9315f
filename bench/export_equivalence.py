"""Do this code's exported maps give the seeds a finished run's maps gave?

    python bench/export_equivalence.py --run outputs/default [--batch-size 8] [--amp bf16]
    python bench/export_equivalence.py --run RUN --batch-size 8 --reference-batch-size 1   # batched vs per image

Re-exports the run's maps with the current export (batches of one exact size; on CUDA,
autocast in `--amp` and channels_last) from the run's own trained localizer, into a
temporary folder, and prints the largest map difference and the seed mIoU of both sets
of maps at the GT-free threshold and at the oracle. The run's maps are read as they are:
a run made before a change to the export shows what the change does to the numbers.
`--reference-batch-size N` compares against a second export of this code instead of the
run's maps (1: one image a forward), i.e. what batching alone changes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import distributed  # noqa: E402
from pipeline.artifacts import ClassMaps, LocalizerWeights, PreparedData, RunFolder, read_maps  # noqa: E402
from pipeline.datasets.prepared import PreparedDataset  # noqa: E402
from pipeline.evaluation import SeedSweep  # noqa: E402
from pipeline.map_statistics import HISTOGRAM_BINS, otsu_threshold, strongest_value_histogram  # noqa: E402
from pipeline.maps import batch_class_maps, size_batches  # noqa: E402
from pipeline.images import load_rgb, to_normalized_tensor  # noqa: E402
from pipeline.models import load_trained_localizer  # noqa: E402
from pipeline.precision import autocast  # noqa: E402


def seed_scores(folder: Path, dataset: PreparedDataset, ids: list[str]) -> dict:
    """Seed mIoU at Otsu's GT-free threshold and at the best threshold of a 0.05-0.95 sweep."""
    histogram = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    for i in ids:
        histogram += strongest_value_histogram(*read_maps(folder / f"{i}.npz"))
    auto = otsu_threshold(histogram)
    sweep = SeedSweep(len(dataset.classes), np.array(sorted({*np.round(np.arange(0.05, 0.955, 0.01), 6), auto})),
                      dataset.ignore_index)
    for i in ids:
        gt = dataset.load_mask(i)
        if gt is not None:
            sweep.add(*read_maps(folder / f"{i}.npz"), gt)
    curve = sweep.miou_curve()
    return {"auto_threshold": auto, "seed_miou": float(curve[np.flatnonzero(np.isclose(sweep.thresholds, auto))[0]]),
            "oracle_seed_miou": float(np.nanmax(curve))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a run folder with export_maps done")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--reference-batch-size", type=int, default=None,
                        help="the reference: this code's export at this batch size instead of the run's maps")
    parser.add_argument("--amp", default="bf16", help="CUDA autocast: bf16, fp16 or none")
    args = parser.parse_args()
    amp = None if args.amp == "none" else args.amp
    run = RunFolder(args.run)
    settings = run.settings(ClassMaps, "export_maps")
    dataset = run.get(PreparedData).load()
    ids = dataset.split(settings["split"])
    device = distributed.device()
    model, _ = load_trained_localizer(run.get(LocalizerWeights).model_path, device)
    if settings.get("fuse_cam"):
        raise SystemExit("runs that fuse a CAM are not handled here; use an unfused run")
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    def export(folder: Path, batch_size: int) -> list:
        batches = size_batches(dataset, ids, batch_size)
        for batch in batches:
            images = torch.stack([to_normalized_tensor(load_rgb(dataset.image_path(i))) for i in batch]).to(device)
            with autocast(device, amp):
                maps = batch_class_maps(model, images, [dataset.labels[i] for i in batch],
                                        tuple(settings["scales"]), settings["flip"])
            for i, m in zip(batch, maps):
                np.savez(folder / f"{i}.npz", maps=m.cpu().numpy().astype(np.float16),
                         classes=np.asarray(dataset.labels[i], dtype=np.int16))
        return batches

    with tempfile.TemporaryDirectory() as tmp_new, tempfile.TemporaryDirectory() as tmp_old:
        new, old = Path(tmp_new), run.get(ClassMaps).maps_dir
        if args.reference_batch_size is not None:
            old = Path(tmp_old)
            export(old, args.reference_batch_size)
        batches = export(new, args.batch_size)
        largest, differences = 0.0, []
        for i in ids:
            difference = np.abs(read_maps(new / f"{i}.npz")[0] - read_maps(old / f"{i}.npz")[0])
            largest = max(largest, float(difference.max(initial=0.0)))
            differences.append(float(difference.mean()) if difference.size else 0.0)
        before, after = seed_scores(old, dataset, ids), seed_scores(new, dataset, ids)
    print(f"export equivalence on {args.run} ({len(ids)} images in {len(batches)} batches of at most "
          f"{args.batch_size}, each of one exact size; {device}, "
          f"{'fp32' if device.type != 'cuda' or amp is None else amp})")
    print(f"  map difference: largest {largest:.5f}, mean of the per-image means {np.mean(differences):.5f}")
    reference = "run's maps" if args.reference_batch_size is None else f"batch {args.reference_batch_size}"
    for name, s in ((reference, before), ("this export", after)):
        print(f"  {name:<12} seed mIoU {100 * s['seed_miou']:.2f} (GT-free t {s['auto_threshold']:.3f}), "
              f"oracle {100 * s['oracle_seed_miou']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
