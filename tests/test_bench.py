"""The bench scripts that the README's figures come from still run (tiny sizes, CPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stages import STAGES

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.heavy
def test_gpu_check_runs_every_stage_in_cpu_mode(tmp_path):
    result = subprocess.run([sys.executable, "bench/gpu_check.py", "--images", "24", "--json",
                             str(tmp_path / "check.json")], capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout[result.stdout.index("gpu_check on"):]
    for stage in STAGES:
        if stage.name != "report":
            assert f"  {stage.name} " in table, stage.name
    check = json.loads((tmp_path / "check.json").read_text())
    rows = {r["stage"]: r for r in check["stages"]}
    assert rows["export_maps"]["images"] == 24 and rows["export_maps"]["rate"] == "after warm-up"
    for stage in ("train_localizer", "export_maps", "refine_masks", "train_segmenter", "evaluate_segmenter"):
        r = rows[stage]  # the extrapolation is the paper config's VOC work at the measured rate
        assert r["voc_minutes"] == pytest.approx(r["voc_images"] / r["images_per_s"] / 60)
    assert check["voc_hours"] == pytest.approx(sum(r["voc_minutes"] or 0 for r in check["stages"]) / 60)
    assert rows["export_maps"]["voc_images"] == 10582  # VOC train_aug
    assert check["flops"]["train_localizer"] > 0 and check["flops"]["train_segmenter"] > 0
    assert "GFLOP per image per training step" in table


@pytest.mark.heavy
def test_gpu_check_killed_after_its_first_stages_keeps_their_rows(tmp_path):
    """A short GPU allocation can end the check at any moment: the JSON holds every stage
    that finished before it."""
    import signal
    import time

    out = tmp_path / "check.json"
    process = subprocess.Popen([sys.executable, "bench/gpu_check.py", "--images", "24", "--json", str(out),
                                "--work-dir", str(tmp_path / "work")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    deadline = time.time() + 600
    rows = []
    while time.time() < deadline and process.poll() is None:
        if out.is_file():
            try:
                rows = json.loads(out.read_text())["stages"]
            except json.JSONDecodeError:  # caught mid-write
                rows = []
            if len(rows) >= 2:
                break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = [r["stage"] for r in json.loads(out.read_text())["stages"]]
    assert kept[:2] == ["prepare", "train_localizer"] and len(kept) < len(STAGES) - 1


def test_voc_like_sizes_spread_over_hundreds_of_sizes_within_voc_bounds():
    from bench.gpu_check import voc_like_sizes

    sizes = voc_like_sizes(2000)
    assert all(100 <= min(s) and max(s) == 500 for s in sizes)
    assert len(set(sizes)) > 300 and sizes.count((375, 500)) / len(sizes) == pytest.approx(0.4, abs=0.05)


@pytest.mark.heavy
def test_real_photo_bench_learning_curve_on_a_tiny_coco_tree(tmp_path):
    """--epochs runs one point per schedule (seed 0; every seed at --seeds-at), the table
    has a row per point, --print-only --plot draws the curve."""
    from pipeline.datasets import examples as ft

    root = ft.make_coco(tmp_path / "coco", year=2017)
    out = tmp_path / "out"
    shrink = ["train_localizer.batch_size=2", "train_localizer.crop=64", "train_localizer.resize_long=(64,80)",
              "export_maps.scales=(0.5,)", "check_premise.images=2", "check_premise.offsets=(-8,8)"]
    result = subprocess.run([sys.executable, "bench/real_photos.py", "--data-root", str(root), "--classes", "person",
                             "--seeds", "0", "1", "--seeds-at", "2", "--methods", "bas", "--segmenter-seeds",
                             "--epochs", "1", "2", "--min-images", "1", "--out", str(out), "--cfg-options", *shrink],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["curve"]["1"]["seeds"] == [0] and results["curve"]["2"]["seeds"] == [0, 1]
    assert {p.name for p in (out / "epochs2").iterdir() if p.is_dir()} == {"bas_seed0", "bas_seed1"}
    steps = [json.loads((out / f"epochs{e}" / "bas_seed0" / "train_localizer" / "manifest.json").read_text())
             ["artifacts"]["steps"] for e in (1, 2)]
    assert steps[1] == 2 * steps[0] and results["curve"]["2"]["methods"]["bas"]["steps"] == [steps[1]] * 2
    printed = subprocess.run([sys.executable, "bench/real_photos.py", "--print-only", "--out", str(out), "--plot",
                              str(tmp_path / "curve.png")], capture_output=True, text=True, timeout=300)
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert f"| 1 ({steps[0]}) | bas | 1 |" in printed.stdout and f"| 2 ({steps[1]}) | bas | 2 |" in printed.stdout
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_every_figure_block_of_the_docs_is_its_bench_json():
    """README.md and docs/results.md state no figure by hand: each block equals what
    bench/readme_tables.py makes from docs/figures/*.json."""
    result = subprocess.run([sys.executable, "bench/readme_tables.py", "--check"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_walk_diagnosis_measures_edges_and_ranking_as_defined():
    from bench.walk_diagnosis import class_edges, on_grid, roc_auc

    labels = np.zeros((4, 6), dtype=np.uint8)
    labels[:, 3:] = 2
    labels[0, 0] = 255  # an ignored pixel next to background: no edge
    edges = class_edges(labels)
    assert edges.sum() == 4 and edges[:, 2].all()  # the pixel left of each 0|2 step
    assert on_grid(np.kron(labels, np.ones((4, 4), dtype=np.uint8)), (4, 6)).tolist() == labels.tolist()
    scores = np.array([0.9, 0.8, 0.1, 0.2, 0.3])
    assert roc_auc(scores, np.array([True, True, False, False, False])) == 1.0
    assert roc_auc(scores, np.array([False, False, True, True, True])) == 0.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
