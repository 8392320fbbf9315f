"""The command line, end to end on a tiny synthetic set (grows with every stage)."""

import json

import run_pipeline
from stages import STAGES

TINY = ["--config", "tests/tiny_config.py"]


def test_whole_pipeline_end_to_end_then_cached(tmp_path, capsys):
    args = ["--work-dir", str(tmp_path), *TINY]
    assert run_pipeline.main(args) == 0
    for stage in STAGES:
        assert (tmp_path / stage.name / "manifest.json").is_file(), stage.name
    assert (tmp_path / "config.py").is_file() and (tmp_path / "pipeline.log").is_file()
    first = json.loads((tmp_path / "prepare" / "manifest.json").read_text())["run_id"]
    capsys.readouterr()  # the run's own output (mmengine logs to stdout)

    assert run_pipeline.main(["--status", *args]) == 0
    out = capsys.readouterr().out
    assert all(f"{s.name}" in out for s in STAGES) and "missing" not in out and "stale" not in out

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
