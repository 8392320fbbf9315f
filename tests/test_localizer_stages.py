"""train_localizer, export_maps and evaluate_maps on a tiny synthetic set, on CPU."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pipeline.config import check_sections, load_config
from pipeline.errors import ConfigError
from pipeline.datasets.prepared import PreparedDataset
from pipeline.runner import Pipeline
from stages import STAGES
from pipeline.training.loop import LAST_CHECKPOINT, TrainingDiverged, TrainSettings
from pipeline.training.randomness import EpochBatches, repeat_factors
from tests.conftest import TINY_CONFIG, TINY_TRAIN


def manifest(run_dir, stage):
    return json.loads((run_dir / stage / "manifest.json").read_text())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    cfg = load_config(TINY_CONFIG)
    Pipeline(STAGES, cfg, run_dir).run([s.name for s in STAGES])
    return run_dir


def test_exported_maps_round_trip(finished_run):
    ds = PreparedDataset.load(finished_run / "prepare")
    info = manifest(finished_run, "export_maps")
    ids = ds.split(info["info"]["split"])
    assert info["artifacts"]["maps"] == len(ids)
    for image_id in ids:
        with np.load(finished_run / "export_maps" / "maps" / f"{image_id}.npz") as saved:
            maps, classes = saved["maps"], saved["classes"]
        assert maps.dtype == np.float16 and maps.shape == (len(ds.labels[image_id]), *ds.load_mask(image_id).shape)
        assert classes.tolist() == ds.labels[image_id]
        assert (maps >= 0).all() and (maps <= 1).all()  # BAS's probabilities: averaged, not max-normalised


def test_map_evaluation_picks_t_without_gt_and_reports_the_oracle_gap(finished_run):
    m = manifest(finished_run, "evaluate_maps")
    curve = dict((round(t, 6), v) for t, v in m["metrics"]["curve"])
    assert min(curve) == pytest.approx(0.05) and max(curve) == pytest.approx(0.95)
    assert m["info"]["threshold_chosen_on_gt"] is False and m["info"]["threshold_source"].startswith("auto")
    t = m["metrics"]["threshold"]
    assert t == m["metrics"]["auto_threshold"] and 0 < t < 1
    assert m["metrics"]["seed_miou"] == pytest.approx(curve[round(t, 6)])
    assert m["metrics"]["oracle_seed_miou"] == pytest.approx(max(curve.values()))
    assert m["metrics"]["gap_to_oracle"] == pytest.approx(max(curve.values()) - curve[round(t, 6)])


def test_oracle_threshold_is_the_best_of_the_sweep_and_says_so(finished_run, tmp_path):
    cfg = load_config(TINY_CONFIG, {"evaluate_maps.threshold": "oracle"})
    for stage in ("prepare", "train_localizer", "export_maps"):
        os.symlink(finished_run / stage, tmp_path / stage)
    Pipeline(STAGES, cfg, tmp_path).run(["evaluate_maps"])
    m = manifest(tmp_path, "evaluate_maps")
    assert m["info"]["threshold_chosen_on_gt"] is True
    assert m["metrics"]["seed_miou"] == pytest.approx(max(v for _, v in m["metrics"]["curve"]))
    assert m["metrics"]["gap_to_oracle"] == 0


def test_fixed_threshold_is_used_as_given(finished_run, tmp_path):
    cfg = load_config(TINY_CONFIG, {"evaluate_maps.threshold": 0.33})
    for stage in ("prepare", "train_localizer", "check_premise", "export_maps"):
        os.symlink(finished_run / stage, tmp_path / stage)
    p = Pipeline(STAGES, cfg, tmp_path)
    assert [row[1] for row in p.plan(p.select("all"))][:6] == ["skip", "skip", "skip", "off", "skip", "run"]
    p.run(["evaluate_maps"])
    m = manifest(tmp_path, "evaluate_maps")
    assert m["metrics"]["threshold"] == pytest.approx(0.33) and m["info"]["threshold_chosen_on_gt"] is False


def test_training_history_logs_every_term(finished_run):
    history = manifest(finished_run, "train_localizer")["metrics"]["history"]
    assert set(history[0]) >= {"epoch", "loss", "mcls", "frg", "bas", "area", "lr", "images_per_s"}


def test_nan_loss_stops_with_a_clear_error_keeps_last_checkpoint_and_resume_finishes(tmp_path, monkeypatch):
    cfg = load_config(TINY_CONFIG, {"train_localizer.epochs": 2})
    p = Pipeline(STAGES, cfg, tmp_path)
    p.run(["prepare"])

    import pipeline.models.bas as bas_module

    real_area, calls = bas_module.area_loss, []

    def nan_in_second_epoch(fpm_c):
        calls.append(1)
        value = real_area(fpm_c)
        return value * float("nan") if len(calls) > 3 else value  # 3 steps per epoch

    monkeypatch.setattr(bas_module, "area_loss", nan_in_second_epoch)
    with pytest.raises(TrainingDiverged, match="loss is nan at epoch 2, step 1.*last good checkpoint is"):
        p.run(["train_localizer"])
    saved = torch.load(tmp_path / "train_localizer" / LAST_CHECKPOINT, weights_only=True)
    assert saved["steps_done"] == 3  # the end of epoch 1

    monkeypatch.setattr(bas_module, "area_loss", real_area)
    p.run(["train_localizer"])
    m = manifest(tmp_path, "train_localizer")
    assert m["resumed"] is True and [h["epoch"] for h in m["metrics"]["history"]] == [1, 2]
    assert m["artifacts"]["steps"] == 6
    assert len(m["attempts"]) == 2 and m["duration_s"] == pytest.approx(sum(a["seconds"] for a in m["attempts"]))


def test_cam_baseline_config_changes_one_line_and_trains(tmp_path):
    cfg = load_config(TINY_CONFIG, {"localizer.type": "cam"})
    Pipeline(STAGES, cfg, tmp_path).run(["prepare", "train_localizer"])
    history = manifest(tmp_path, "train_localizer")["metrics"]["history"]
    assert set(history[0]) >= {"soft_margin", "loss"}
    assert load_config("configs/default_cam.py").localizer.type == "cam"


def test_repeat_factors_follow_lvis_and_leave_common_classes_and_negatives_at_one():
    labels = [[1]] * 6 + [[1, 2]] + [[3]] * 2 + [[]]  # class 2 in 1 of 10 images, class 3 in 2, class 1 in 7
    factors = repeat_factors(labels, threshold=0.4)
    assert factors[0] == 1.0 and factors[-1] == 1.0  # a common class; a negative
    assert factors[6] == pytest.approx(2.0)  # sqrt(0.4 / 0.1): the image's rarest class decides
    assert factors[7] == pytest.approx(2 ** 0.5)  # sqrt(0.4 / 0.2)
    assert repeat_factors(labels, threshold=0.0) == [1.0] * 10


def test_repeat_factor_batches_draw_rare_images_more_often_and_resume_exactly():
    factors = [1.0] * 9 + [3.0]
    batches = EpochBatches(10, batch=2, seed=0, factors=factors)
    drawn = np.zeros(10)
    for epoch in range(300):
        batches.start(epoch)
        epoch_items = [i for batch in batches for i, _ in batch]
        assert len(epoch_items) == 10  # the epoch keeps its steps
        np.add.at(drawn, epoch_items, 1)
    assert 2.5 < drawn[9] / drawn[:9].mean() < 3.5
    batches.start(7)
    whole = list(batches)
    batches.start(7, skip=3)
    assert list(batches) == whole[3:]  # a resumed epoch draws what the uninterrupted one drew


def test_repeat_factor_sampling_trains_the_localizer_and_is_refused_out_of_range(tmp_path):
    cfg = load_config(TINY_CONFIG, {"train_localizer.repeat_factor_threshold": 0.5, "train_localizer.epochs": 1})
    Pipeline(STAGES, cfg, tmp_path).run(["prepare", "train_localizer"])
    assert manifest(tmp_path, "train_localizer")["config"]["train_localizer"]["repeat_factor_threshold"] == 0.5
    with pytest.raises(ConfigError, match="repeat_factor_threshold"):
        check_sections(load_config(TINY_CONFIG, {"train_localizer.repeat_factor_threshold": 2.0}),
                       {"train_localizer": TrainSettings})


@pytest.mark.heavy
def test_two_process_gloo_ddp_with_warmup_runs_the_same_steps_on_each_rank(finished_run, tmp_path):
    os.symlink(finished_run / "prepare", tmp_path / "prepare")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "run_pipeline.py", "--config", TINY_CONFIG, "--work-dir", str(tmp_path),
           "--stage", "train_localizer,export_maps",
           "--cfg-options", "train_localizer.epochs=2", "train_localizer.classifier_warmup_epochs=1"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    m = manifest(tmp_path, "train_localizer")
    assert m["artifacts"]["processes"] == 2
    # 12 images, batch 4 = 2 per rank: 3 steps an epoch on each rank; the generator has no
    # loss in the warm-up epoch, and DDP (find_unused_parameters=False) must not mind
    assert m["metrics"]["steps_this_attempt_per_rank"] == [6, 6]
    exported = manifest(tmp_path, "export_maps")
    assert exported["artifacts"]["maps"] == exported["artifacts"]["images"] == TINY_TRAIN


def test_export_fuses_a_cam_run_and_refuses_a_non_cam_run(finished_run, tmp_path):
    from pipeline.errors import ConfigError

    cam_run = tmp_path / "cam"
    cam_run.mkdir()
    (cam_run / "prepare").symlink_to(finished_run / "prepare")
    Pipeline(STAGES, load_config(TINY_CONFIG, {"localizer.type": "cam"}), cam_run).run(["train_localizer"])

    fused_run = tmp_path / "fused"
    fused_run.mkdir()
    for stage in ("prepare", "train_localizer"):
        (fused_run / stage).symlink_to(finished_run / stage)
    cfg = load_config(TINY_CONFIG, {"export_maps.fuse_cam": str(cam_run)})
    Pipeline(STAGES, cfg, fused_run).run(["export_maps"])
    fused_from = manifest(fused_run, "export_maps")["info"]["fused_with_cam"]
    assert fused_from == {"run": str(cam_run), "stage": "train_localizer",
                          "run_id": manifest(cam_run, "train_localizer")["run_id"]}
    image_id = PreparedDataset.load(finished_run / "prepare").split("train")[0]
    with np.load(fused_run / "export_maps" / "maps" / f"{image_id}.npz") as a, \
            np.load(finished_run / "export_maps" / "maps" / f"{image_id}.npz") as b:
        assert a["maps"].shape == b["maps"].shape and not np.array_equal(a["maps"], b["maps"])

    # retraining the external CAM makes the fused maps stale: its model is in the fingerprint
    p = Pipeline(STAGES, cfg, fused_run)
    assert p.status("export_maps").state == "done"
    Pipeline(STAGES, load_config(TINY_CONFIG, {"localizer.type": "cam"}), cam_run).run(["train_localizer"],
                                                                                          force=True)
    status = p.status("export_maps")
    assert status.state == "stale" and "outside the run folder" in status.reason

    cfg = load_config(TINY_CONFIG, {"export_maps.fuse_cam": str(finished_run)})  # a BAS run
    with pytest.raises(ConfigError, match="is a 'bas' model"):
        Pipeline(STAGES, cfg, fused_run).run(["export_maps"], force=True)


def test_export_averages_probability_maps_and_max_normalises_activations():
    """BAS's sigmoid maps keep their level (a map low everywhere stays low); a CAM's
    ReLU'd maps, which have no ceiling, are divided by their maximum."""
    from pipeline.maps import class_maps

    class Constant(torch.nn.Module):
        def __init__(self, value, probabilities):
            super().__init__()
            self.value, self.maps_are_probabilities = value, probabilities

        def forward(self, x):
            return torch.full((x.shape[0], 2, x.shape[2] // 4, x.shape[3] // 4), self.value)

    image = torch.zeros(3, 32, 32)
    low = class_maps(Constant(0.1, True), image, [1, 2], scales=(1.0, 0.5), flip=True)
    assert torch.allclose(low, torch.full_like(low, 0.1))
    cam = class_maps(Constant(7.0, False), image, [2], scales=(1.0,), flip=False)
    assert torch.allclose(cam, torch.ones_like(cam), atol=1e-5)


def test_map_statistics_per_class_name_collapsed_classes():
    """GT-free per-class statistics of the exported maps: a class whose maps are about
    0 everywhere is counted as collapsed (BAS's failure mode), the others are not."""
    from pipeline.map_statistics import MapStatistics

    stats = MapStatistics(["background", "a", "b"])
    for _ in range(3):
        stats.add(np.stack([np.full((8, 8), 0.01), np.full((8, 8), 0.4)]).astype(np.float32), np.array([1, 2]))
    summary = stats.summary()
    assert summary["a"]["collapsed_share"] == 1.0 and summary["a"]["images"] == 3
    assert summary["b"]["collapsed_share"] == 0.0 and summary["b"]["mean"] == pytest.approx(0.4)
    assert stats.collapsed_classes() == ["a"]


# Batched against per-image maps: fp32 on the CPU, where only the order of a convolution's
# sums may differ with the batch (oneDNN picks kernels by shape). Maps lie in [0, 1]; 2e-4
# is under half the float16 step near 1 (2^-11 = 4.9e-4) that the map files keep, so a
# difference this small cannot change a stored map by more than one rounding step.
BATCH_TOLERANCE = 2e-4


@pytest.mark.parametrize("kind", ["bas", "cam", "drs"])
@pytest.mark.parametrize("backbone", [dict(depth=18, output_stride=16),
                                      dict(type="timm", name="tf_efficientnet_lite0", output_stride=16)])
def test_a_batched_export_gives_each_image_its_own_maps(kind, backbone):
    """Every registered localizer on both backbone kinds: three images of one size in
    one batch (and their flips, at three scales) give the maps each gives alone."""
    from pipeline.maps import batch_class_maps, class_maps
    from pipeline.models import build_localizer

    torch.manual_seed(0)
    model = build_localizer(dict(type=kind, backbone=backbone), 5)[0].eval()
    with torch.no_grad():  # positive class scores: ReLU'd maps with content, not zeros
        model.classifier.weight.abs_()
    images = torch.randn(3, 3, 75, 61)
    classes = [[1, 3], [2], [4, 1, 5]]
    batched = batch_class_maps(model, images, classes, (1.0, 0.5, 1.5), True)
    for image, c, together in zip(images, classes, batched):
        alone = class_maps(model, image, c, (1.0, 0.5, 1.5), True)
        assert together.shape == alone.shape == (len(c), 75, 61)
        assert alone.amax() > 0.1  # maps with content, not all zero
        torch.testing.assert_close(together, alone, rtol=0, atol=BATCH_TOLERANCE)


def test_export_batches_hold_one_exact_size_and_the_manifest_counts_them(finished_run):
    from pipeline.images import image_size
    from pipeline.maps import size_batches

    dataset = PreparedDataset.load(finished_run / "prepare")
    info = manifest(finished_run, "export_maps")["info"]
    ids = dataset.split(info["split"])
    batches = size_batches(dataset, ids, 3)
    assert sorted(i for b in batches for i in b) == sorted(ids)
    assert all(len(b) <= 3 and len({image_size(dataset.image_path(i)) for i in b}) == 1 for b in batches)
    assert sum(int(n) * k for n, k in info["batch_sizes"].items()) == len(ids)


def test_the_same_machine_gives_the_same_maps_twice(finished_run, tmp_path):
    """The promise behind the README's default figures: on one machine (same threads, same
    instruction set) a run repeats bit for bit, training included. Other machines may
    differ (bench/determinism.py measures by how much)."""
    again = tmp_path / "again"
    Pipeline(STAGES, load_config(TINY_CONFIG), again).run(["prepare", "train_localizer", "export_maps"])
    losses = lambda run: [{k: v for k, v in epoch.items() if "per_s" not in k and "time" not in k}  # noqa: E731
                          for epoch in manifest(run, "train_localizer")["metrics"]["history"]]
    assert losses(again) == losses(finished_run) and losses(again)[0]["loss"] > 0
    for path in sorted((finished_run / "export_maps" / "maps").glob("*.npz")):
        with np.load(path) as a, np.load(again / "export_maps" / "maps" / path.name) as b:
            assert np.array_equal(a["maps"], b["maps"]), path.name




def test_colour_jitter_is_drawn_per_sample_seed_and_off_by_default(tmp_path):
    import numpy as np
    from PIL import Image

    from pipeline.errors import ConfigError
    from pipeline.training.data import AugmentedLabelledImages
    from pipeline.training.settings import TrainSettings

    class OneImage:
        num_classes, labels = 3, {"a": [2]}

        def image_path(self, _):
            return tmp_path / "a.png"

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(60, 200, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    plain = AugmentedLabelledImages(OneImage(), ["a"], (60, 60), crop=64)
    off = AugmentedLabelledImages(OneImage(), ["a"], (60, 60), crop=64, color_jitter=0.0)
    on = AugmentedLabelledImages(OneImage(), ["a"], (60, 60), crop=64, color_jitter=0.4)
    for seed in range(4):
        (x, y), (x0, _), (xj, yj) = plain[(0, seed)], off[(0, seed)], on[(0, seed)]
        assert torch.equal(x, x0)  # 0 draws nothing: a run without jitter is unchanged
        assert torch.equal(xj, on[(0, seed)][0]) and torch.equal(y, yj)  # the same seed, the same sample
        assert y.tolist() == [0.0, 1.0, 0.0]
    stds = {round(float(on[(0, seed)][0].std()), 4) for seed in range(4)}
    assert len(stds) == 4  # contrast differs from draw to draw
    with pytest.raises(ConfigError, match="color_jitter"):
        TrainSettings(epochs=1, batch_size=1, lr=0.1, color_jitter=1.5)


def test_erasure_check_scores_every_class_and_names_masks_that_erase_nothing(finished_run):
    """check_premise's GT-free erasure check: the finished run's manifest holds a score in
    [0, 1] for every class with training images; a localizer whose class-1 masks are 0
    everywhere (erasing them leaves the score whole, L_bas = 1) gets that class named."""
    from pipeline.erasure_check import background_activation_per_class, classes_whose_masks_miss
    from pipeline.models import load_trained_localizer

    ds = PreparedDataset.load(finished_run / "prepare")
    ids = ds.split("train")
    per_class = manifest(finished_run, "check_premise")["metrics"]["background_activation_per_class"]
    assert set(per_class) == {ds.classes[c] for i in ids for c in ds.labels[i]}
    assert all(0 <= s["mean"] <= 1 for s in per_class.values())
    model, _ = load_trained_localizer(finished_run / "train_localizer" / "model.pth")
    generator = torch.nn.Conv2d(model.generator.in_channels, ds.num_classes, 3, padding=1)
    with torch.no_grad():
        generator.weight.copy_(model.generator.weight)
        generator.bias.zero_()
        generator.weight[0].zero_()
        generator.bias[0] = -40.0  # class 1: M = sigmoid(-40) = 0, nothing erased
        model.classifier.weight[0].abs_()  # and a positive score to keep (layer4 features are >= 0)
    model.generator = generator
    checked = background_activation_per_class(model, ds, ids)
    assert checked[ds.classes[1]]["mean"] == pytest.approx(1.0, abs=1e-4)
    assert ds.classes[1] in classes_whose_masks_miss(checked)


def test_erasure_check_bench_reproduces_the_stage_figures(finished_run):
    from bench.erasure_check import check_run

    result = check_run(finished_run)
    stage = manifest(finished_run, "check_premise")["metrics"]
    expected = stage["background_activation_per_class"]
    assert {k: v["images"] for k, v in result["per_class"].items()} == {k: v["images"] for k, v in expected.items()}
    assert {k: v["mean"] for k, v in result["per_class"].items()} == pytest.approx(
        {k: v["mean"] for k, v in expected.items()}, abs=1e-6)
    assert result["masks_miss_objects"] == stage["masks_miss_objects"]
    assert set(result["seed_iou"]) == set(result["per_class"])
