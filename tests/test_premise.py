"""The premise check (pipeline.premise): curves on a classifier that sees exactly the object, and the verdict."""

import numpy as np
import torch
from torch import nn

from pipeline.premise import grown, premise_curves, verdict


class ObjectClassifier(nn.Module):
    """A 'trained localizer' whose class-1 activation is +1 on the object, -0.2 elsewhere
    (class 2: the opposite), at full resolution, so the premise holds by construction."""

    def __init__(self, mask: np.ndarray):
        super().__init__()
        self.register_buffer("mask", torch.from_numpy(mask.astype(np.float32)))
        self.weight = nn.Parameter(torch.ones(1))

    def class_activation(self, x):
        on = self.mask - 0.2 * (1 - self.mask)
        return 10 * torch.stack([on, -on])[None]


class OneImage:
    classes = ["background", "a", "b"]

    def __init__(self, mask):
        self.mask, self.labels = mask, {"x": [1]}

    def load_mask(self, image_id):
        return self.mask

    def load_image(self, image_id):
        return np.zeros((*self.mask.shape, 3), dtype=np.uint8)


def test_grown_erodes_and_dilates():
    mask = np.zeros((21, 21), bool)
    mask[5:16, 5:16] = True
    assert grown(mask, 2).sum() > mask.sum() > grown(mask, -2).sum()
    assert grown(mask, 0) is mask


def test_a_classifier_that_sees_the_object_shows_both_observations():
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 1
    offsets = list(range(-8, 17, 4))
    curves = premise_curves(ObjectClassifier(mask == 1), OneImage(mask), ["x"], offsets)
    ce, act = np.array(curves["a"]["ce"]), np.array(curves["a"]["activation"])
    assert np.all(np.diff(act[:3]) > 0) and np.all(np.diff(act[2:]) < 0)  # rises to the boundary, then falls
    v = verdict(offsets, curves)["a"]
    assert v["activation_peak_offset"] == 0 and v["observation_2"]
    assert v["ce_at_gt"] < 0.1 and v["observation_1"]


def test_the_verdict_fails_a_classifier_whose_activation_peaks_outside():
    offsets = [-8, -4, 0, 4, 8, 12]
    curves = {"a": {"ce": [0.9, 0.7, 0.5, 0.4, 0.45, 0.5], "activation": [0.2, 0.4, 0.6, 0.8, 0.9, 1.0],
                    "objects": 1}}
    v = verdict(offsets, curves)["a"]
    assert v["activation_peak_offset"] == 12 and not v["observation_2"]
    assert v["ce_min_offset"] == 4 and not v["observation_1"]


def test_with_one_class_the_premise_ce_is_binary_not_identically_zero():
    """A softmax over one logit is always 1: with one class a 0 background logit joins."""
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[8:24, 8:24] = 1

    class OneClass(ObjectClassifier):
        def class_activation(self, x):
            return super().class_activation(x)[:, :1]  # masked logit ~2.5 at the GT: binary CE ~0.08

    class OneClassImage(OneImage):
        classes = ["background", "a"]

    curves = premise_curves(OneClass(mask == 1), OneClassImage(mask), ["x"], [-4, 0, 4])
    assert all(ce > 0.01 for ce in curves["a"]["ce"])


def test_min_share_keeps_only_large_objects():
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[8:24, 8:24] = 1  # 25 % of the image
    assert premise_curves(ObjectClassifier(mask == 1), OneImage(mask), ["x"], [0], min_share=0.3) == {}
    assert "a" in premise_curves(ObjectClassifier(mask == 1), OneImage(mask), ["x"], [0], min_share=0.2)


class SeesItsImage(nn.Module):
    """Class-1 activation +10 where the image is bright (the object), -0.05 elsewhere."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))

    def class_activation(self, x):
        on = (x[:, :1] > 0).float()
        return 10 * torch.cat([on - 0.005 * (1 - on), 0.005 * (1 - on) - on], 1)


class Images:
    """Images whose bright pixels are their object, one mask an id."""
    classes = ["background", "a", "b"]

    def __init__(self, masks: dict):
        self.masks, self.labels = masks, {i: [1] for i in masks}

    def load_mask(self, image_id):
        return self.masks[image_id]

    def load_image(self, image_id):
        return np.repeat(self.masks[image_id][..., None] * 255, 3, axis=2).astype(np.uint8)


def test_objects_that_erode_away_are_counted_and_left_out_of_every_offset():
    """A 4x4 object is gone after 2 px of erosion, a 20x20 one is not: at -8 and -4 px half
    the objects are left (hand-counted), and the curves hold the large object alone at
    every offset, so that the left of the curve and its right describe one population."""
    big, small = np.zeros((40, 40), np.uint8), np.zeros((40, 40), np.uint8)
    big[10:30, 10:30] = 1
    small[18:22, 18:22] = 1
    offsets = [-8, -4, 0, 4]
    both = premise_curves(SeesItsImage(), Images({"big": big, "small": small}), ["big", "small"], offsets)["a"]
    assert both["objects_checked"] == 2 and both["objects"] == 1
    assert both["surviving_share"] == [0.5, 0.5, 1.0, 1.0]
    # the large object alone: its masked activation relative to the whole map, by hand
    cam = np.where(big == 1, 10.0, -0.05)
    full = cam.mean()
    expected = [(cam * grown(big == 1, k)).mean() / full for k in offsets]
    np.testing.assert_allclose(both["activation"], expected, rtol=1e-5)
