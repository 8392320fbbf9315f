"""Does a data set pose the problem BAS solves? The BAS paper's exploratory experiment.

BAS rests on two observations about a trained classifier (docs/method.md, section 6):
as a mask grows from an object's most decisive part to its whole extent, (1) the
classification cross-entropy reaches about 0 early, while (2) the class activation
keeps rising until the mask reaches the object's boundary. For each image with GT,
every GT class's mask is eroded (negative offsets, px) and dilated (positive); the
class activation map F (layer4 + the 1x1 classifier) is masked ("feature-map masking",
as in the paper) and gives

- CE: the softmax cross-entropy over classes of GAP(F * mask), target the class;
- activation: GAP(F_c * mask), relative to the unmasked GAP(F_c).

`verdict` states the two observations as numbers with fixed criteria (below), never
tuned on a method's mIoU. Observation 1 is read two ways: as the paper states it, the CE
is about 0 while the mask covers only part of the object (at some eroded mask,
`observation_1_partial`), and the stricter reading earlier versions tested alone, the
CE is about 0 at the whole GT mask (`observation_1`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.errors import ConfigError

DISK = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)  # 4-connected steps
# Observation 1 holds where CE is below this (softmax CE; ln 2 = 0.69 is a coin toss
# between two classes): at the GT mask (`observation_1`), or already at an eroded mask
# (`observation_1_partial`, the paper's statement).
CE_NEAR_ZERO = 0.1
# Observation 2 holds where the activation peaks within this many px of the boundary
# and rises by at least ACTIVATION_RISE (of the unmasked activation) from the most
# eroded mask to the GT mask.
PEAK_TOLERANCE_PX = 8
ACTIVATION_RISE = 0.2



@dataclasses.dataclass(frozen=True)
class PremiseSettings:
    images: int = 60  # the first N images of the localizer's training split that have GT
    step: int = 4  # px per erosion / dilation step
    offsets: tuple[int, int] = (-16, 40)  # most eroded, most dilated (px)
    scale: float = 1.0  # images resized by this first: the scale the localizer trained at
    # Only objects covering at least this share of their image (0: all). The paper checked
    # CUB birds that fill the frame; with GAP over the whole map a small object's masked
    # score is diluted by its area.
    min_object_share: float = 0.0

    def __post_init__(self) -> None:
        if self.step < 1 or not self.offsets[0] <= 0 <= self.offsets[1] or self.offsets[0] % self.step:
            raise ConfigError(f"check_premise: offsets {self.offsets} must straddle 0 in steps of {self.step}")

def grown(mask: np.ndarray, offset: int) -> np.ndarray:
    """`mask` dilated (offset > 0) or eroded (< 0) by |offset| px (4-connected steps)."""
    if offset == 0:
        return mask
    from scipy import ndimage

    op = ndimage.binary_dilation if offset > 0 else ndimage.binary_erosion
    return op(mask, structure=DISK, iterations=abs(offset))


def premise_ids(dataset, split: str, images: int | None, min_share: float = 0.0) -> tuple[list[str], int]:
    """(the first `images` ids of `split` that have GT, and with `min_share` > 0 an object
    class covering at least that share of the image; how many of the split have no GT)."""
    ids = dataset.split(split)
    with_gt = [i for i in ids if dataset.mask_path(i) is not None]
    chosen = with_gt if min_share <= 0 else [i for i in with_gt if large_classes(dataset, i, min_share)]
    return chosen[:images], len(ids) - len(with_gt)


def large_classes(dataset, image_id: str, min_share: float) -> list[int]:
    """The image's labelled classes whose GT covers at least `min_share` of it."""
    gt = dataset.load_mask(image_id)
    return [c for c in dataset.labels[image_id] if (gt == c).mean() >= min_share]


def premise_curves(model, dataset, ids: list[str], offsets: list[int], scale: float = 1.0,
                   min_share: float = 0.0) -> dict[str, dict]:
    """Per class name: 'ce' and 'activation', one mean per offset over the objects (image,
    class pairs of `ids`) whose mask survives every offset; 'objects', how many those are;
    'objects_checked', every object the classifier sees; and 'surviving_share', per offset
    the share of those whose mask is not yet eroded away. Deep erosion leaves only large
    objects: a mean over whoever is left at each offset would compare one population on
    the left of the curve with another on the right, so the curves hold one population
    and the shares say what it leaves out.
    `model`: a trained localizer (its `class_activation`, pipeline/models/base.py); with one
    class a constant 0 logit joins the CE (a softmax over one logit is always 1);
    `scale`: the image is resized by it first (the scale the localizer trained at);
    offsets stay in the original image's pixels; `min_share`: only objects (classes) that
    cover at least that share of their image are checked (the paper's CUB birds fill the frame)."""
    import torch  # the CLI imports this module for its settings: torch only when the check runs

    with torch.inference_mode():
        return _premise_curves(model, dataset, ids, offsets, scale, min_share)


def _premise_curves(model, dataset, ids, offsets, scale, min_share) -> dict[str, dict]:
    import torch.nn.functional as F

    from pipeline.images import to_normalized_tensor

    classes = dataset.classes
    sums = {c: np.zeros((2, len(offsets))) for c in classes[1:]}
    left = {c: np.zeros(len(offsets)) for c in classes[1:]}
    checked, survivors = dict.fromkeys(classes[1:], 0), dict.fromkeys(classes[1:], 0)
    device = next(model.parameters()).device
    for image_id in ids:
        gt = dataset.load_mask(image_id)
        if gt is None:
            continue
        x = to_normalized_tensor(dataset.load_image(image_id))[None].to(device)
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        cam = model.class_activation(x)[0].float()  # (C, h, w)
        for c in dataset.labels[image_id]:
            if min_share > 0 and (gt == c).mean() < min_share:
                continue
            full = cam[c - 1].mean()
            if full <= 0:  # the classifier does not see the class: no relative activation
                continue
            masks = [grown(gt == c, offset) for offset in offsets]
            alive = np.array([m.any() for m in masks])
            name = classes[c]
            checked[name] += 1
            left[name] += alive
            if alive.all():
                sums[name] += _masked_scores(cam, c, masks, full)
                survivors[name] += 1
    out = {}
    for name in sums:
        if checked[name]:
            mean = sums[name] / survivors[name] if survivors[name] else np.full_like(sums[name], np.nan)
            ce, act = ([None if np.isnan(v) else float(v) for v in row] for row in mean)  # JSON has no NaN
            out[name] = {"ce": ce, "activation": act, "objects": survivors[name],
                         "objects_checked": checked[name],
                         "surviving_share": [float(v) for v in left[name] / checked[name]]}
    return out


def _masked_scores(cam, c: int, masks: list[np.ndarray], full) -> np.ndarray:
    """(2, offsets): the CE of class `c` and its activation relative to `full`, under each mask."""
    import torch
    import torch.nn.functional as F

    scores = np.zeros((2, len(masks)))
    target = torch.tensor([c - 1], device=cam.device)
    for j, mask in enumerate(masks):
        small = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None].to(cam.device),
                              size=cam.shape[1:], mode="area")[0, 0]
        logits = (cam * small).mean((1, 2))
        if len(logits) == 1:
            logits = torch.cat([logits, logits.new_zeros(1)])
        scores[0, j] = float(F.cross_entropy(logits[None], target))
        scores[1, j] = float((cam[c - 1] * small).mean() / full)
    return scores


def verdict(offsets: list[int], curves: dict[str, dict]) -> dict[str, dict]:
    """Per class: CE at the GT mask, the most eroded offset where CE is already about 0,
    the offset of the activation's peak, its rise from the most eroded mask to the GT
    mask, and whether observations 1 (both readings) and 2 hold."""
    offsets = np.asarray(offsets)
    at_gt = int(np.flatnonzero(offsets == 0)[0])
    out = {}
    for name, curve in curves.items():
        if not curve["objects"]:  # no object of the class survives the deepest erosion
            continue
        ce, act = np.asarray(curve["ce"], dtype=float), np.asarray(curve["activation"], dtype=float)  # None -> NaN
        valid = ~np.isnan(act)
        peak = int(offsets[valid][np.argmax(act[valid])])
        first = int(np.flatnonzero(valid)[0])
        rise = float(act[at_gt] - act[first])
        near_zero = np.flatnonzero(valid & (ce < CE_NEAR_ZERO))
        near_zero_from = int(offsets[near_zero[0]]) if len(near_zero) else None
        out[name] = {
            "ce_at_gt": float(ce[at_gt]), "ce_min_offset": int(offsets[valid][np.argmin(ce[valid])]),
            "ce_near_zero_from_offset": near_zero_from,
            "observation_1_partial": near_zero_from is not None and near_zero_from < 0,
            "activation_peak_offset": peak, "activation_rise_to_gt": rise,
            "observation_1": bool(ce[at_gt] < CE_NEAR_ZERO),
            "observation_2": bool(abs(peak) <= PEAK_TOLERANCE_PX and rise >= ACTIVATION_RISE),
        }
    return out
