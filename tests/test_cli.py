"""The command line, end to end on a tiny synthetic set (grows with every stage)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import run_pipeline
from stages import STAGES

TINY = ["--config", "tests/tiny_config.py"]


def test_whole_pipeline_end_to_end_then_cached(tmp_path, capsys):
    args = ["--work-dir", str(tmp_path), *TINY]
    assert run_pipeline.main(args) == 0
    off = {"train_cam_partner", "train_boundary", "random_walk"}  # the default leaves them off
    for stage in STAGES:
        assert (tmp_path / stage.name / "manifest.json").is_file() == (stage.name not in off), stage.name
    assert (tmp_path / "config.py").is_file() and (tmp_path / "pipeline.log").is_file()
    first = json.loads((tmp_path / "prepare" / "manifest.json").read_text())["run_id"]
    capsys.readouterr()  # the run's own output (mmengine logs to stdout)

    assert run_pipeline.main(["--status", *args]) == 0
    out = capsys.readouterr().out
    states = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:] if line.strip()}
    assert states == {s.name: "off" if s.name in off else "done" for s in STAGES}

    assert run_pipeline.main(args) == 0  # cached: nothing re-runs
    assert json.loads((tmp_path / "prepare" / "manifest.json").read_text())["run_id"] == first

    assert run_pipeline.main(["--dry-run", *args, "--cfg-options", "evaluate_maps.threshold=0.3"]) == 0
    out = capsys.readouterr().out
    assert "evaluate_maps        run      stale: config section 'evaluate_maps' changed" in out
    assert "prepare              skip" in out


def test_bad_input_gives_an_error_message_not_a_traceback(tmp_path, capsys):
    assert run_pipeline.main(["--work-dir", str(tmp_path), "--cfg-options", "dataset.nope=1"]) == 2
    assert "no key 'nope'" in capsys.readouterr().err
    assert run_pipeline.main(["--work-dir", str(tmp_path), "--stage", "prepar"]) == 2
    assert "unknown stage" in capsys.readouterr().err
    assert run_pipeline.main(["--config", str(tmp_path / "missing.py")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_own_folder_without_masks_runs_end_to_end(tmp_path, capsys):
    """A user's images and labels, no masks, no splits: every stage finishes, nothing is
    scored, the threshold is chosen without GT, the card scores each pseudo-mask."""
    from pipeline.datasets import examples as ft

    root = tmp_path / "mine"
    (root / "images").mkdir(parents=True)
    (root / "classes.txt").write_text("apple\nbanana\n")
    labels = ["apple", "banana", "apple banana", "banana", "apple", "apple banana", "banana", "apple"]
    (root / "labels.csv").write_text("image_id,labels\n" + "".join(f"u{n},{v}\n" for n, v in enumerate(labels)))
    for n in range(len(labels)):
        ft.write_jpeg(root / "images" / f"u{n}.jpg", 300 + n)
    config = tmp_path / "mine.py"
    config.write_text(f"_base_ = ['{(Path(__file__).parent / 'tiny_config.py').resolve()}']\n"
                      f"dataset = dict(_delete_=True, type='folder', data_root='{root}', n_jobs=1)\n")
    run = tmp_path / "run"
    assert run_pipeline.main(["--config", str(config), "--work-dir", str(run)]) == 0
    capsys.readouterr()

    def manifest(stage):
        return json.loads((run / stage / "manifest.json").read_text())

    premise = manifest("check_premise")
    assert premise["info"]["checked"] is False and premise["artifacts"]["images_without_gt"] == len(labels)
    maps = manifest("evaluate_maps")
    assert maps["artifacts"]["images_scored"] == 0 and "seed_miou" not in maps["metrics"]
    assert maps["info"]["threshold_chosen_on_gt"] is False and 0 < maps["metrics"]["threshold"] < 1
    refine = manifest("refine_masks")
    assert refine["artifacts"]["scored_against_gt"] == 0 and "miou" not in refine["metrics"]
    card = json.loads((run / "refine_masks" / "pseudo_masks" / "dataset_card.json").read_text())
    assert set(card["quality"]["per_image"]) == {f"u{n}" for n in range(len(labels))}
    seg = manifest("evaluate_segmenter")
    assert seg["info"]["split"] == "train" and seg["artifacts"]["scored_against_gt"] == 0
    assert seg["artifacts"]["predictions"] == len(labels)
    html = (run / "report" / "index.html").read_text()
    assert "quality score" in html and "Per-class IoU" not in html and "per-image mIoU" not in html


def test_fusion_with_the_cam_partner_runs_end_to_end_and_tracks_the_partner(tmp_path, capsys):
    args = ["--work-dir", str(tmp_path), *TINY, "--cfg-options", "export_maps.fuse_cam=train_cam_partner"]
    assert run_pipeline.main(args) == 0
    capsys.readouterr()
    partner = json.loads((tmp_path / "train_cam_partner" / "manifest.json").read_text())
    export = json.loads((tmp_path / "export_maps" / "manifest.json").read_text())
    assert export["info"]["fused_with_cam"] == {"run": str(tmp_path), "stage": "train_cam_partner",
                                                "run_id": partner["run_id"]}
    assert run_pipeline.main(["--dry-run", *args[:-2], "--cfg-options", "export_maps.fuse_cam=train_cam_partner",
                              "train_cam_partner.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "train_cam_partner    run      stale: config section 'train_cam_partner' changed" in out
    assert "export_maps          run      upstream 'train_cam_partner' runs first" in out
    assert "train_localizer      skip" in out
    assert run_pipeline.main(["--dry-run", *args[:-2]]) == 0  # fusion off: the partner is off
    out = capsys.readouterr().out
    assert "train_cam_partner    off" in out and "export_maps          run      stale" in out


import pytest  # noqa: E402


@pytest.mark.parametrize("override, message", [
    ("dataset.num_train=abc", "dataset.num_train: expected int, got 'abc' (str)"),
    ("dataset.num_train=1.5", "dataset.num_train: expected int, got 1.5 (float)"),
    ("dataset.image_size=128", "dataset.image_size: expected a tuple (int, int), got 128 (int)"),
    ("train_localizer.epochs=abc", "train_localizer.epochs: expected int, got 'abc' (str)"),
    ("train_localizer.epochs=-3", "train_localizer.epochs must be at least 1, got -3"),
    ("export_maps.batch_size=many", "export_maps.batch_size: expected int, got 'many' (str)"),
])
@pytest.mark.parametrize("mode", ["--dry-run", "--status"])
def test_a_bad_override_value_is_one_line_naming_key_type_and_value_before_anything_runs(
        tmp_path, capsys, override, message, mode):
    assert run_pipeline.main([mode, "--work-dir", str(tmp_path), *TINY, "--cfg-options", override]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n"
    assert not (tmp_path / "prepare").exists()


def test_an_override_without_equals_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_pipeline.main(["--dry-run", *TINY, "--cfg-options", "dataset.num_train"])
    assert exit_.value.code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_status_while_another_process_runs_a_stage_says_running_with_pid_host_and_since(tmp_path, capsys):
    import os

    from pipeline.run_lock import RunLock
    from pipeline.runner import IN_PROGRESS

    (tmp_path / "prepare").mkdir(parents=True)
    (tmp_path / "prepare" / IN_PROGRESS).write_text("{}")
    args = ["--status", "--work-dir", str(tmp_path), *TINY]
    assert run_pipeline.main(args) == 0
    assert "prepare              missing  interrupted; the next run resumes it" in capsys.readouterr().out
    with RunLock(tmp_path):
        assert run_pipeline.main(args) == 0
        out = capsys.readouterr().out
    assert f"prepare              running  by process {os.getpid()} on host " in out and "(since 20" in out
    assert "train_localizer      missing  never run" in out


@pytest.mark.parametrize("mode", [["--help"], ["--status"], ["--dry-run"]])
def test_help_status_and_dry_run_load_no_torch(tmp_path, mode):
    """The planning commands answer in about a second: they import no torch or
    torchvision (each stage imports them when it runs). A fresh interpreter, a fresh folder."""
    script = (f"import runpy, sys\nsys.argv = ['run_pipeline.py', *{mode!r}, '--work-dir', {str(tmp_path / 'run')!r}]\n"
              "try:\n    runpy.run_path('run_pipeline.py', run_name='__main__')\nexcept SystemExit as done:\n"
              "    assert done.code in (0, None), done.code\n"
              "print('loaded:', sorted(m for m in ('torch', 'torchvision', 'timm', 'mmseg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("loaded: []"), out.stdout[-500:]


def test_dry_run_refuses_a_missing_data_root_in_one_line(tmp_path, capsys):
    config = tmp_path / "mine.py"
    config.write_text(f"_base_ = ['{(Path(__file__).parent.parent / 'configs' / 'folder.py').resolve()}']\n")
    code = run_pipeline.main(["--dry-run", "--config", str(config), "--work-dir", str(tmp_path / "run"),
                              "--cfg-options", f"dataset.data_root={tmp_path / 'nowhere'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"data root {tmp_path / 'nowhere'} does not exist" in err
