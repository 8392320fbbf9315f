"""Why are a run's seeds what they are? GT-free signals first, then the GT breakdown.

    python bench/diagnose_real.py outputs/curve_voc20/epochs20/bas_seed0 outputs/curve_voc20/epochs20/cam_seed0
    python bench/diagnose_real.py RUN [RUN ...] --json docs/figures/NAME.json   # the per-size table, for the docs

For each finished run folder (prepare ... refine_masks), printed and written to
`<run>/diagnosis.json`:

GT-free (what a user without masks can look at):
- training's last epoch: loss terms; for BAS the mask's mean area, its saturation (share
  of values beyond 0.05 / 0.95) and the share of collapsed masks;
- the classifier's image-level ranking quality, mAP over classes, on the training split
  and on the other split (image labels only): under-fitting (both low) or over-fitting
  (train high, val low);
- the maps: per class, the share of an image's pixels above the chosen t (predicted
  area), the share of map values near 0 or 1 (saturation), and the collapsed classes.

With GT (labelled so; nothing here chooses a setting):
- per-class IoU of the seeds and of the CRF's masks, with the class's image count;
- per (image, class): IoU against the object's size (share of the image the class's
  GT covers: small < 5 %, medium 5-30 %, large > 30 %) and the photo's number of classes,
  for the seeds, the CRF's masks and (where the run has one) the random walk's;
- predicted area against GT area per class (too broad or too narrow).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.artifacts import (ClassMaps, LocalizerWeights, Predictions, PreparedData, PseudoMasks,  # noqa: E402
                                RunFolder, SeedScores, Segmenter)
from pipeline.datasets.masks import IGNORE_INDEX, read_mask  # noqa: E402
from pipeline.datasets.prepared import PreparedDataset  # noqa: E402
from pipeline.images import load_rgb, to_normalized_tensor  # noqa: E402
from pipeline.models import load_trained_localizer  # noqa: E402

SIZES = (("small", 0.0, 0.05), ("medium", 0.05, 0.30), ("large", 0.30, 1.01))


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    order = np.argsort(-scores)
    hits = positive[order]
    if not hits.any():
        return float("nan")
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


@torch.no_grad()
def classifier_map(run: Path, dataset: PreparedDataset, split: str, long_side: int) -> float:
    """mAP over classes of the image-level logits GAP(F), images resized to `long_side`."""
    model, _ = load_trained_localizer(RunFolder(run).get(LocalizerWeights).model_path)
    scores, labels = [], []
    for image_id in dataset.split(split):
        image = load_rgb(dataset.image_path(image_id))
        scale = long_side / max(image.size)
        image = image.resize((max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale))))
        scores.append(model.class_activation(to_normalized_tensor(image)[None]).mean((2, 3))[0].numpy())
        row = np.zeros(dataset.num_classes, dtype=bool)
        row[[c - 1 for c in dataset.labels[image_id]]] = True
        labels.append(row)
    scores, labels = np.array(scores), np.array(labels)
    aps = [average_precision(scores[:, c], labels[:, c]) for c in range(dataset.num_classes)]
    return float(np.nanmean(aps))


def diagnose(run: Path, long_side: int) -> dict:
    folder = RunFolder(run)
    dataset = folder.get(PreparedData).load()
    seeds, crf = folder.metrics(SeedScores), folder.metrics(PseudoMasks, "refine_masks")
    last = folder.metrics(LocalizerWeights)["history"][-1]
    t = seeds["threshold"]
    class_maps = folder.get(ClassMaps)
    split = class_maps.split
    other = next((s for s in dataset.splits if s != split), None)
    classifier = {split: classifier_map(run, dataset, split, long_side)}
    if other:
        classifier[other] = classifier_map(run, dataset, other, long_side)

    n = len(dataset.classes)
    area_pred, area_gt, saturated, counted = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    by_size = {name: [] for name, _, _ in SIZES}
    by_classes = {}
    crf_by_size = {name: [] for name, _, _ in SIZES}
    walk_by_size = {name: [] for name, _, _ in SIZES}
    crf_masks = folder.get(PseudoMasks, "refine_masks")
    walk_masks = folder.get(PseudoMasks, "random_walk") if "random_walk" in folder.producers(PseudoMasks) else None
    for image_id in dataset.split(split):
        maps, classes = class_maps.read_image(image_id)
        gt = dataset.load_mask(image_id)
        if not len(classes):
            continue
        seed = np.where(maps.max(0) > t, np.asarray(classes)[maps.argmax(0)], 0)
        pseudo = read_mask(crf_masks.mask_path(image_id)) if crf_masks.mask_path(image_id).is_file() else None
        walked = (read_mask(walk_masks.mask_path(image_id))
                  if walk_masks and walk_masks.mask_path(image_id).is_file() else None)
        valid = gt != IGNORE_INDEX if gt is not None else np.ones(seed.shape, dtype=bool)
        for k, c in enumerate(classes):
            counted[c] += 1
            area_pred[c] += (seed == c).mean()
            saturated[c] += ((maps[k] < 0.05) | (maps[k] > 0.95)).mean()
            if gt is None:
                continue
            truth = (gt == c) & valid
            area_gt[c] += truth.mean()
            share = truth.mean()
            size = next(name for name, lo, hi in SIZES if lo <= share < hi)
            iou = lambda pred: float(((pred == c) & truth).sum() / max(((pred == c) & valid | truth).sum(), 1))  # noqa: E731
            by_size[size].append(iou(seed))
            by_classes.setdefault(min(len(classes), 3), []).append(iou(seed))
            if pseudo is not None:
                crf_by_size[size].append(iou(pseudo))
            if walked is not None:
                walk_by_size[size].append(iou(walked))
    names = dataset.classes
    per_class = {names[c]: {"images": int(counted[c]), "seed_iou": seeds["per_class_iou"].get(names[c]),
                            "crf_iou": crf["per_class_iou"].get(names[c]),
                            "predicted_area": float(area_pred[c] / counted[c]),
                            "gt_area": float(area_gt[c] / counted[c]), "saturation": float(saturated[c] / counted[c])}
                 for c in range(1, n) if counted[c]}
    mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
    return {
        "run": str(run), "method": folder.get(LocalizerWeights).method, "threshold": t,
        "training_last_epoch": {k: v for k, v in last.items() if k not in ("epoch", "lr", "images_per_s")},
        "classifier_map": classifier, "collapsed_classes": seeds.get("collapsed_classes", []),
        "seed_miou": seeds["seed_miou"], "crf_miou": crf["miou"], "per_class": per_class,
        "seed_iou_by_object_size": {k: {"objects": len(v), "mean_iou": mean(v)} for k, v in by_size.items()},
        "crf_iou_by_object_size": {k: {"objects": len(v), "mean_iou": mean(v)} for k, v in crf_by_size.items()},
        "walk_iou_by_object_size": {k: {"objects": len(v), "mean_iou": mean(v)} for k, v in walk_by_size.items()},
        "seed_iou_by_classes_in_photo": {f"{k}{'+' if k == 3 else ''}": {"objects": len(v), "mean_iou": mean(v)}
                                         for k, v in sorted(by_classes.items())},
        "segmenter": _segmenter(folder, crf_masks),
    }


def _segmenter(folder: RunFolder, masks) -> dict | None:
    """The segmenter's summary where the run trained and evaluated one."""
    if not folder.has(Predictions):
        return None
    predictions = folder.get(Predictions)
    summary = segmenter_summary(sorted(predictions.masks_dir.glob("*.png")), masks.card(),
                                folder.metrics(Predictions)["miou"])
    return {**summary, "iterations": folder.settings(Segmenter, "train_segmenter")["iters"]}


def show(d: dict) -> None:
    print(f"\n{d['run']} ({d['method']}): seed mIoU {100 * d['seed_miou']:.1f}, CRF {100 * d['crf_miou']:.1f}, "
          f"t {d['threshold']:.2f}, collapsed {d['collapsed_classes'] or 'none'}")
    print("  training, last epoch: " + ", ".join(f"{k} {v:.3g}" for k, v in d["training_last_epoch"].items()))
    print("  classifier mAP (image labels): " + ", ".join(f"{s} {100 * v:.1f}" for s, v in d["classifier_map"].items()))
    for key in ("seed_iou_by_object_size", "crf_iou_by_object_size", "walk_iou_by_object_size",
                "seed_iou_by_classes_in_photo"):
        print(f"  {key} (GT): " + ", ".join(f"{k} {100 * v['mean_iou']:.1f} ({v['objects']})"
                                           for k, v in d[key].items() if v["mean_iou"] is not None))
    print(f"  {'class':<12} {'images':>6} {'seed IoU':>8} {'CRF IoU':>8} {'pred. area':>10} {'GT area':>8} {'saturation':>10}")
    for name, c in sorted(d["per_class"].items(), key=lambda item: -item[1]["images"]):
        fmt = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
        print(f"  {name:<12} {c['images']:>6} {fmt(c['seed_iou']):>8} {fmt(c['crf_iou']):>8} "
              f"{fmt(c['predicted_area']):>10} {fmt(c['gt_area']):>8} {fmt(c['saturation']):>10}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--json", type=Path, help="also write the per-size table and the diagnoses here")
    parser.add_argument("--long-side", type=int, default=256,
                        help="resize for the classifier check (the real-photo recipe's training scale: the "
                             "geometric middle of its 128-512)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    rows = []
    for run in args.runs:
        d = diagnose(run, args.long_side)
        (run / "diagnosis.json").write_text(json.dumps(d, indent=1))
        show(d)
        rows.append(d)
    if args.json:
        from bench.seeds import commit, machine
        from pipeline.versions import package_versions

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": "python bench/diagnose_real.py " + " ".join(sys.argv[1:]), "machine": machine(),
            "commit": commit(), "package_versions": package_versions(), "runs": rows,
            "table": size_table(rows) + ([""] + segmenter_table(rows) if any(d.get("segmenter") for d in rows) else [])},
            indent=1))
    return 0


def segmenter_summary(predictions: list[Path], card: dict, val_miou: float, share: float = 0.005) -> dict:
    """GT-free: which classes the segmenter predicts on val against those its labels hold
    (each at >= `share` of the pixels); a segmenter that learned only the frequent classes
    predicts a few. With its val mIoU (GT) beside."""
    counts = np.zeros(256, dtype=np.int64)
    for path in predictions:
        counts += np.bincount(read_mask(path).ravel(), minlength=256)
    names = card["classes"]
    shares = counts[:len(names)] / max(int(counts[:len(names)].sum()), 1)
    return {"val_miou": val_miou, "predicted_classes": [names[k] for k in range(len(names)) if shares[k] >= share],
            "label_classes": [n for n, s in card["class_pixel_share"].items() if s >= share],
            "predicted_share": {names[k]: float(shares[k]) for k in range(len(names)) if shares[k]}}


def segmenter_table(rows: list[dict]) -> list[str]:
    """Per run with a segmenter: its iterations, val mIoU against its labels' mIoU, and the
    classes it predicts on val against those its labels hold (GT-free)."""
    lines = ["| run | segmenter iterations | pseudo-mask mIoU (train) | segmenter mIoU (val) "
             "| classes predicted on val / in its labels (>= 0.5 % of pixels) |", "|---|---|---|---|---|"]
    for d in rows:
        s = d.get("segmenter")
        if s:
            lines.append(f"| {Path(d['run']).name} | {s['iterations']} | {100 * d['crf_miou']:.1f} "
                         f"| {100 * s['val_miou']:.1f} | {len(s['predicted_classes'])} / {len(s['label_classes'])} "
                         f"({', '.join(s['predicted_classes'])}) |")
    return lines


def size_table(rows: list[dict]) -> list[str]:
    """Per run: mean IoU of the seeds, the CRF's and the walk's masks by object size (all
    (photo, class) pairs with GT; bins of the share of the photo the class covers: small
    < 5 %, medium 5-30 %, large > 30 %, not COCO's pixel-area bins), and the
    classifier's mAP on its training split and the other (GT-free: image labels)."""
    sizes = [name for name, _, _ in SIZES]
    header = ("| run | " + " | ".join(f"{what} IoU, {s}" for what in ("seed", "CRF", "walk") for s in sizes)
              + " | classifier mAP (train / other split) |")
    lines = [header, "|" + "---|" * (2 + 3 * len(sizes))]
    cell = lambda v: "-" if v["mean_iou"] is None else f"{100 * v['mean_iou']:.1f} ({v['objects']})"  # noqa: E731
    for d in rows:
        values = [cell(d[f"{what}_iou_by_object_size"][s]) for what in ("seed", "crf", "walk") for s in sizes]
        maps = " / ".join(f"{100 * v:.1f}" for v in d["classifier_map"].values())
        lines.append(f"| {Path(d['run']).name} | " + " | ".join(values) + f" | {maps} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
