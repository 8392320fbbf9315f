"""A run killed (SIGKILL) at any moment and resumed ends exactly where an uninterrupted
run ends: the same weights, bit for bit on CPU, and byte-identical per-item files."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from tests.conftest import TINY_CONFIG

pytestmark = pytest.mark.heavy  # SIGKILL / torchrun subprocess runs

ENV = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
# Two epochs of three steps; a checkpoint at every epoch end and after step 5 (mid-epoch 2).
LOCALIZER = ["--cfg-options", "train_localizer.epochs=2", "train_localizer.checkpoint_every_steps=5"]
SEGMENTER = ["train_segmenter.iters=6", "train_segmenter.checkpoint_interval=3"]


def pipeline(run_dir, stages, *extra, kill_at=None, config=TINY_CONFIG):
    """Run the command line in a subprocess; `kill_at=(target, n)` SIGKILLs it there."""
    args = ["--config", str(config), "--work-dir", str(run_dir), "--stage", stages, *LOCALIZER, *SEGMENTER, *extra]
    cmd = [sys.executable, "tests/kill_at.py", kill_at[0], str(kill_at[1])] if kill_at else [sys.executable,
                                                                                               "run_pipeline.py"]
    result = subprocess.run(cmd + args, env=ENV, capture_output=True, text=True, timeout=600)
    if kill_at:
        assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    else:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def weights(path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state)


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("uninterrupted")
    pipeline(run, "prepare,train_localizer,export_maps,evaluate_maps,refine_masks,train_segmenter",
             "refine_masks.n_jobs=1")
    return run


def link_upstream(run, reference, stages):
    run.mkdir(exist_ok=True)
    for stage in stages:
        (run / stage).symlink_to(reference / stage)


@pytest.mark.parametrize("kill_at", [
    ("pipeline.training.checkpoint:save_checkpoint", 1),  # right after the checkpoint at the end of epoch 1
    ("pipeline.training.checkpoint:save_checkpoint", 2),  # right after the mid-epoch checkpoint (step 5)
    ("torch.optim:SGD.step", 5),  # between checkpoints: steps 4-5 are done again
], ids=["epoch-end", "mid-epoch-checkpoint", "between-checkpoints"])
def test_killed_localizer_resumes_to_identical_weights(reference, tmp_path, kill_at):
    link_upstream(tmp_path, reference, ["prepare"])
    pipeline(tmp_path, "train_localizer", kill_at=kill_at)
    assert not (tmp_path / "train_localizer" / "manifest.json").exists()
    pipeline(tmp_path, "train_localizer")
    assert_same_weights(tmp_path / "train_localizer" / "model.pth", reference / "train_localizer" / "model.pth")
    m = json.loads((tmp_path / "train_localizer" / "manifest.json").read_text())
    ref = json.loads((reference / "train_localizer" / "manifest.json").read_text())
    assert m["resumed"] is True and len(m["attempts"]) == 2 and m["attempts"][0]["killed"] is True
    assert m["duration_s"] == pytest.approx(sum(a["seconds"] for a in m["attempts"]))
    strip = lambda h: [{k: v for k, v in e.items() if k != "images_per_s"} for e in h]  # noqa: E731
    assert strip(m["metrics"]["history"]) == strip(ref["metrics"]["history"])


def test_killed_export_and_crf_resume_to_identical_files(reference, tmp_path):
    link_upstream(tmp_path, reference, ["prepare", "train_localizer"])
    pipeline(tmp_path, "export_maps", kill_at=("stages.export_maps:save_npz", 5))
    maps = tmp_path / "export_maps" / "maps"
    assert len(list(maps.glob("*.npz"))) == 5 and not list(maps.glob("*.tmp-*"))
    pipeline(tmp_path, "export_maps,evaluate_maps")
    assert files(maps) == files(reference / "export_maps" / "maps")

    pipeline(tmp_path, "refine_masks", "refine_masks.n_jobs=1", kill_at=("pipeline.pseudo_masks:save_mask", 4))
    pipeline(tmp_path, "refine_masks", "refine_masks.n_jobs=1")
    masks = "refine_masks/pseudo_masks/SegmentationClass"
    assert files(tmp_path / masks) == files(reference / masks)


def test_killed_segmenter_resumes_to_identical_weights(reference, tmp_path):
    link_upstream(tmp_path, reference, ["prepare", "train_localizer", "export_maps", "evaluate_maps", "refine_masks"])
    # killed right after the checkpoint of iteration 3 (and its `last_checkpoint` pointer)
    pipeline(tmp_path, "train_segmenter", kill_at=("mmengine.hooks:CheckpointHook._save_checkpoint_with_step", 1))
    assert (tmp_path / "train_segmenter" / "work" / "iter_3.pth").is_file()
    resumed = pipeline(tmp_path, "train_segmenter")
    assert "advance dataloader 3 steps" in (resumed.stdout + resumed.stderr).lower()
    assert_same_weights(tmp_path / "train_segmenter" / "model.pth", reference / "train_segmenter" / "model.pth")


def test_killed_boundary_net_and_random_walk_resume_to_identical_results(tmp_path):
    config = tmp_path / "rw_config.py"
    root = os.getcwd()
    config.write_text(f"""_base_ = ['{root}/{TINY_CONFIG}', '{root}/configs/_base_/random_walk_irn.py']
refine_masks = dict(confident=dict(enabled=True), n_jobs=1)
train_segmenter = dict(pseudo_masks='random_walk')
localizer = dict(backbone=dict(_delete_=True, depth=18, output_stride=16, weights=None))  # a ResNet, to lend
boundary_net = dict(backbone=dict(depth=18, output_stride=16, weights='localizer', frozen_bn=False), radius=3)
train_boundary = dict(epochs=2, batch_size=4, resize_long=(56, 80), crop=64, amp=None, num_workers=0,
                      checkpoint_every_steps=2)
random_walk = dict(radius=2, exp_times=4)
""")
    stages = "prepare,train_localizer,export_maps,evaluate_maps,refine_masks,train_boundary,random_walk"
    reference = tmp_path / "uninterrupted"
    pipeline(reference, stages, config=config)
    run = tmp_path / "killed"
    link_upstream(run, reference, ["prepare", "train_localizer", "export_maps", "evaluate_maps", "refine_masks"])
    pipeline(run, "train_boundary", kill_at=("torch.optim:SGD.step", 3), config=config)  # between checkpoints
    pipeline(run, "train_boundary", config=config)
    assert_same_weights(run / "train_boundary" / "model.pth", reference / "train_boundary" / "model.pth")
    pipeline(run, "random_walk", kill_at=("pipeline.pseudo_masks:save_mask", 4), config=config)
    masks = "random_walk/pseudo_masks/SegmentationClass"
    assert len(list((run / masks).glob("*.png"))) == 4
    pipeline(run, "random_walk", config=config)
    assert files(run / masks) == files(reference / masks)
