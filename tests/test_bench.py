"""The bench scripts that the README's figures come from still run (tiny sizes, CPU)."""

import json
import os
import subprocess
import sys

import pytest

from stages import STAGES


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
    assert all(rows[s]["voc_minutes"] > 0 for s in ("train_localizer", "export_maps", "refine_masks",
                                                     "train_segmenter", "evaluate_segmenter"))
    assert check["voc_hours"] > 0
    assert check["flops"]["train_localizer"] > 0 and check["flops"]["train_segmenter"] > 0
    assert "GFLOP per image per training step" in table


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
