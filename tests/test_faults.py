"""Faults a user can cause or meet: a second run on a busy folder, a lock left by a dead
process, a damaged manifest or marker, a full / read-only disk, Ctrl-C. Each ends in one
message (no traceback), leaves nothing partial, and the re-run gives what an undisturbed
run gives."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from pipeline.run_lock import RunFolderBusy, RunLock
from pipeline.runner import IN_PROGRESS, MANIFEST, Pipeline, StorageError
from tests import toy_stages

ROOT = Path(__file__).resolve().parents[1]


def make(run_dir, items=5) -> Pipeline:
    cfg = Config(dict(toy=dict(items=items, scale=2), toy2=dict(offset=1), run_name=None))
    return Pipeline(toy_stages.STAGES, cfg, run_dir)


def outputs(run_dir) -> dict:
    return {str(p.relative_to(run_dir)): p.read_text() for p in sorted(run_dir.rglob("*.txt"))}


def test_a_second_run_on_a_busy_folder_is_refused_at_once_naming_the_holder(tmp_path):
    with RunLock(tmp_path):
        result = subprocess.run([sys.executable, "run_pipeline.py", "--config", "tests/tiny_config.py",
                                 "--work-dir", str(tmp_path), "--stage", "prepare"],
                                cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert f"in use by process {os.getpid()}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "prepare").exists()  # nothing was written by the refused run


def test_status_and_dry_run_read_a_busy_folder_without_the_lock(tmp_path):
    with RunLock(tmp_path):
        for flag in ("--status", "--dry-run"):
            result = subprocess.run([sys.executable, "run_pipeline.py", "--config", "tests/tiny_config.py",
                                     "--work-dir", str(tmp_path), flag], cwd=ROOT, capture_output=True, text=True)
            assert result.returncode == 0, result.stderr


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps({"host": "gone", "pid": 999999, "since": "yesterday"}))
    with RunLock(tmp_path):  # no process holds the OS lock: taken
        with pytest.raises(RunFolderBusy, match="in use by process"):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire()  # released on exit


def test_a_damaged_manifest_is_not_done_and_is_rerun(tmp_path):
    p = make(tmp_path)
    p.run(["count", "total"])
    before = outputs(tmp_path)
    path = tmp_path / "count" / MANIFEST
    path.write_text(path.read_text()[:100])
    status = make(tmp_path).status("count")
    assert status.state == "missing" and "unreadable" in status.reason
    assert make(tmp_path).status("total").state == "stale"
    assert [o for _, o, _ in make(tmp_path).run(["count", "total"])] == ["ran", "ran"]
    assert outputs(tmp_path) == before


def test_a_damaged_in_progress_marker_starts_the_stage_clean(tmp_path):
    (tmp_path / "count").mkdir()
    (tmp_path / "count" / IN_PROGRESS).write_text("{not json")
    make(tmp_path).run(["count"])
    assert json.loads((tmp_path / "count" / MANIFEST).read_text())["artifacts"]["items"] == 5


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only file system"),
                                         (errno.EACCES, "permission denied")])
def test_a_disk_fault_ends_in_one_message_and_the_rerun_resumes(tmp_path, monkeypatch, code, words):
    reference = tmp_path / "reference"
    make(reference).run(["count", "total"])
    run = tmp_path / "run"
    real_write = toy_stages.write_text
    calls = {"n": 0}

    def failing_write(path, text):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(code, os.strerror(code), str(path))
        real_write(path, text)

    monkeypatch.setattr(toy_stages, "write_text", failing_write)
    with pytest.raises(StorageError, match=words) as caught:
        make(run).run(["count", "total"])
    assert "[count]" in str(caught.value) and "item_002.txt" in str(caught.value)
    assert not list((run / "count").glob(".*tmp*")) and not (run / "count" / MANIFEST).exists()
    monkeypatch.setattr(toy_stages, "write_text", real_write)
    make(run).run(["count", "total"])
    assert json.loads((run / "count" / MANIFEST).read_text())["artifacts"]["reused"] == 2
    assert outputs(run) == outputs(reference)


def test_ctrl_c_stops_at_a_safe_point_and_the_rerun_gives_the_same_artifacts(tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    make(reference).run(["count", "total"])
    run = tmp_path / "run"
    monkeypatch.setattr(toy_stages, "CRASH_AFTER", 3)  # KeyboardInterrupt inside a write
    with pytest.raises(KeyboardInterrupt):
        make(run).run(["count", "total"])
    monkeypatch.setattr(toy_stages, "CRASH_AFTER", None)
    make(run).run(["count", "total"])
    assert outputs(run) == outputs(reference)


def test_the_command_line_turns_ctrl_c_into_a_message(tmp_path, monkeypatch, capsys):
    import run_pipeline

    def interrupted(self, selected, force=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_pipeline.Pipeline, "run", interrupted)
    code = run_pipeline.main(["--config", "tests/tiny_config.py", "--work-dir", str(tmp_path), "--stage", "prepare"])
    assert code == 130 and "stopped by Ctrl-C" in capsys.readouterr().err
    RunLock(tmp_path).acquire()  # the lock went with the interrupted run
