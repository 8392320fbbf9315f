"""Does a data set pose the problem BAS solves? The BAS paper's exploratory experiment.

    python bench/premise.py outputs/default outputs/default_cam        # one or more run folders
    python bench/premise.py outputs/default --step 4 --range -16 40 --images 120

BAS rests on two observations about a trained classifier (docs/method.md, section 1): as
a mask grows from an object's most decisive part to its whole extent, (1) the
classification cross-entropy is about 0 early, while (2) the class activation keeps
rising until the mask reaches the object's boundary. For each run's trained localizer
(its classifier: layer4 + the 1x1 classifier) and each image with GT, every GT class's
mask is eroded (negative offsets) and dilated (positive) in steps of `--step` px; the
class activation map F is masked ("feature-map masking", as in the paper) and gives:

- CE: the softmax cross-entropy over classes of GAP(F * mask), target the class;
- activation: GAP(F_c * mask), relative to the unmasked GAP(F_c).

It prints both curves per class (mean over objects) and draws them to
`<first run>/premise.png`. Observation 1 holds where CE is near 0 well inside the
object (negative offsets); observation 2 where the activation still rises up to offset
0 and flattens after it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.datasets.prepared import PreparedDataset  # noqa: E402
from pipeline.images import to_normalized_tensor  # noqa: E402
from pipeline.models import load_trained_localizer  # noqa: E402

DISK = ndimage.generate_binary_structure(2, 1)


def grown(mask: np.ndarray, offset: int) -> np.ndarray:
    if offset == 0:
        return mask
    op = ndimage.binary_dilation if offset > 0 else ndimage.binary_erosion
    return op(mask, structure=DISK, iterations=abs(offset))


@torch.inference_mode()
def curves(run: Path, offsets: list[int], images: int | None) -> dict[str, np.ndarray]:
    """{class name: (2, len(offsets)) mean CE and relative activation}, over objects."""
    dataset = PreparedDataset.load(run / "prepare")
    model, _ = load_trained_localizer(run / "train_localizer" / "model.pth")
    split = json.loads((run / "train_localizer" / "manifest.json").read_text())["config"]["train_localizer"]["split"]
    ids = [i for i in dataset.split(split) if dataset.mask_path(i) is not None][:images]
    sums = {c: np.zeros((2, len(offsets))) for c in dataset.classes[1:]}
    counts = {c: np.zeros(len(offsets)) for c in dataset.classes[1:]}
    for image_id in ids:
        image, gt = dataset.load_image(image_id), dataset.load_mask(image_id)
        _, x4 = model.backbone(to_normalized_tensor(image)[None])
        cam = model.classifier(x4)[0]  # (C, h, w)
        for c in dataset.labels[image_id]:
            full = cam[c - 1].mean()
            if full <= 0:
                continue
            for j, offset in enumerate(offsets):
                mask = grown(gt == c, offset)
                if not mask.any():
                    continue
                small = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=cam.shape[1:],
                                      mode="area")[0, 0]
                logits = (cam * small).mean((1, 2))
                name = dataset.classes[c]
                sums[name][0, j] += float(F.cross_entropy(logits[None], torch.tensor([c - 1])))
                sums[name][1, j] += float((cam[c - 1] * small).mean() / full)
                counts[name][j] += 1
    return {c: sums[c] / np.maximum(counts[c], 1) for c in sums if counts[c].any()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders with a trained localizer")
    parser.add_argument("--step", type=int, default=4, help="pixels per erosion / dilation step")
    parser.add_argument("--range", type=int, nargs=2, default=(-16, 40), metavar=("FROM", "TO"))
    parser.add_argument("--images", type=int, default=120, help="the first N training images with GT")
    args = parser.parse_args()
    offsets = list(range(args.range[0], args.range[1] + 1, args.step))
    results = {}
    for run in args.runs:
        method = json.loads((run / "train_localizer" / "manifest.json").read_text())["info"]["method"]
        results[f"{run.name} ({method})"] = curves(run, offsets, args.images)
    header = "offset px " + " ".join(f"{o:>6d}" for o in offsets)
    for name, per_class in results.items():
        print(f"\n{name}: mean over objects; negative offset = eroded, 0 = the GT mask")
        print("  " + header)
        for cls, (ce, act) in per_class.items():
            print(f"  {cls:<10}CE  " + " ".join(f"{v:6.2f}" for v in ce))
            print(f"  {'':<10}act " + " ".join(f"{v:6.2f}" for v in act))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = sorted({c for per_class in results.values() for c in per_class})
    fig, axes = plt.subplots(2, len(classes), figsize=(3 * len(classes), 5), squeeze=False, sharex=True)
    for name, per_class in results.items():
        for k, cls in enumerate(classes):
            if cls in per_class:
                axes[0, k].plot(offsets, per_class[cls][0], marker=".", label=name)
                axes[1, k].plot(offsets, per_class[cls][1], marker=".", label=name)
            axes[0, k].set_title(cls)
            for row in (0, 1):
                axes[row, k].axvline(0, color="grey", lw=0.5)
    axes[0, 0].set_ylabel("CE of the masked features")
    axes[1, 0].set_ylabel("class activation (rel.)")
    for ax in axes[1]:
        ax.set_xlabel("mask offset (px)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    out = args.runs[0] / "premise.png"
    fig.savefig(out, dpi=100)
    print(f"\nfigure: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
