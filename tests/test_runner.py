import json

import pytest
from mmengine.config import Config

from pipeline.errors import ConfigError, PipelineError
from pipeline.artifacts import IN_PROGRESS, MANIFEST
from pipeline.plan import headline_figure
from pipeline.runner import Pipeline
from pipeline.stage import Input, Stage
from tests import toy_stages


def make(run_dir, items=5, scale=1, offset=0) -> Pipeline:
    cfg = Config(dict(toy=dict(items=items, scale=scale), toy2=dict(offset=offset), run_name=None))
    return Pipeline(toy_stages.STAGES, cfg, run_dir)


def manifest(run_dir, stage):
    return json.loads((run_dir / stage / MANIFEST).read_text())


def states(p: Pipeline):
    return {name: p.status(name).state for name in p.stages}


def test_runs_then_skips_when_fresh(tmp_path):
    p = make(tmp_path)
    assert states(p) == {"count": "missing", "total": "missing"}
    assert [o for _, o, _ in p.run(p.select("all"))] == ["ran", "ran"]
    assert states(p) == {"count": "done", "total": "done"}
    run_ids = {s: manifest(tmp_path, s)["run_id"] for s in ("count", "total")}
    assert [o for _, o, _ in make(tmp_path).run(["count", "total"])] == ["skipped (done)"] * 2
    assert {s: manifest(tmp_path, s)["run_id"] for s in ("count", "total")} == run_ids
    m = manifest(tmp_path, "count")
    assert m["artifacts"] == {"items": 5, "reused": 0}
    assert m["config"] == {"toy": {"items": 5, "scale": 1}}
    assert manifest(tmp_path, "total")["upstream"]["count"]["run_id"] == m["run_id"]


def test_config_change_makes_stage_and_downstream_stale(tmp_path):
    make(tmp_path).run(["count", "total"])
    p = make(tmp_path, scale=3)
    assert p.status("count").state == "stale"
    assert "config section 'toy' changed" in p.status("count").reason
    assert p.status("total").state == "stale"
    assert "upstream 'count' changed" in p.status("total").reason
    p.run(p.select("all"))
    assert states(p) == {"count": "done", "total": "done"}
    assert (tmp_path / "total" / "total.txt").read_text() == str(3 * sum(range(5)))


def test_downstream_section_change_leaves_upstream_done(tmp_path):
    make(tmp_path).run(["count", "total"])
    p = make(tmp_path, offset=7)
    assert states(p) == {"count": "done", "total": "stale"}
    assert [o for _, o, _ in p.run(p.select("all"))] == ["skipped (done)", "ran"]
    assert (tmp_path / "total" / "total.txt").read_text() == str(sum(range(5)) + 7)


def test_force_reruns_and_invalidates_downstream(tmp_path):
    make(tmp_path).run(["count", "total"])
    before = manifest(tmp_path, "count")["run_id"]
    p = make(tmp_path)
    p.run(p.select("count"), force=True)
    assert manifest(tmp_path, "count")["run_id"] != before
    assert p.status("total").state == "stale"
    assert "re-run" in p.status("total").reason
    assert [row[1] for row in p.plan(p.select("all"))] == ["skip", "run"]


def test_crash_mid_stage_resumes_without_counting_half_written_items(tmp_path, monkeypatch):
    monkeypatch.setattr(toy_stages, "CRASH_AFTER", 3)
    p = make(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        p.run(["count"])
    out = tmp_path / "count"
    assert not (out / MANIFEST).exists()
    assert (out / IN_PROGRESS).exists()
    assert sorted(f.name for f in out.glob("item_*")) == ["item_000.txt", "item_001.txt", "item_002.txt"]
    st = p.status("count")
    assert (st.state, st.reason) == ("missing", "interrupted; the next run resumes it")
    assert p.plan(["count"])[0][1] == "resume"

    monkeypatch.setattr(toy_stages, "CRASH_AFTER", None)
    p.run(p.select("all"))
    m = manifest(tmp_path, "count")
    assert m["resumed"] is True
    assert m["artifacts"] == {"items": 5, "reused": 3}
    assert not (out / IN_PROGRESS).exists()
    assert [(out / f"item_{i:03d}.txt").read_text() for i in range(5)] == [str(i) for i in range(5)]


def test_interrupted_stage_rerun_under_new_config_starts_clean(tmp_path, monkeypatch):
    monkeypatch.setattr(toy_stages, "CRASH_AFTER", 3)
    with pytest.raises(KeyboardInterrupt):
        make(tmp_path).run(["count"])
    monkeypatch.setattr(toy_stages, "CRASH_AFTER", None)
    make(tmp_path, scale=2).run(["count"])
    assert manifest(tmp_path, "count")["artifacts"] == {"items": 5, "reused": 0}
    assert (tmp_path / "count" / "item_004.txt").read_text() == "8"


def test_downstream_alone_needs_upstream_done(tmp_path):
    p = make(tmp_path)
    with pytest.raises(PipelineError, match="needs upstream 'count'.*missing"):
        p.run(p.select("total"))


def test_selection_errors_and_order(tmp_path):
    p = make(tmp_path)
    assert p.select("total,count") == ["count", "total"]
    with pytest.raises(PipelineError, match="unknown stage"):
        p.select("cuont")


def test_unknown_top_level_key_is_an_error(tmp_path):
    cfg = Config(dict(toy=dict(items=1, scale=1), toy2=dict(offset=0), tyo3=dict()))
    with pytest.raises(ConfigError, match="unknown top-level key 'tyo3'"):
        Pipeline(toy_stages.STAGES, cfg, tmp_path)


def test_stage_must_declare_the_sections_it_reads(tmp_path):
    stages = [Stage("count", toy_stages.count, step=1)]
    cfg = Config(dict(toy=dict(items=1, scale=1)))
    with pytest.raises(ConfigError):  # 'toy' is unknown to every stage
        Pipeline(stages, cfg, tmp_path)
    stages = [Stage("count", toy_stages.count, step=1, settings={"toy2": None})]
    p = Pipeline(stages, Config(dict(toy2=dict(offset=0))), tmp_path)
    with pytest.raises(PipelineError, match="does not declare it"):
        p.run(["count"])


def test_an_input_needs_a_producer_before_the_consumer(tmp_path):
    early_total = Stage("total", toy_stages.total, step=0.5, consumes=(Input("counts"),), settings={"toy2": None})
    with pytest.raises(PipelineError, match="'total' consumes counts, and no stage before it produces it"):
        Pipeline([toy_stages.STAGES[0], early_total], Config(dict(toy2=dict(offset=0))), tmp_path)


def test_execution_keys_do_not_change_the_fingerprint(tmp_path):
    stages = [Stage("count", toy_stages.count, step=1, settings={"toy": None}, execution_keys=("toy.workers",))]
    cfg = lambda workers, items: Config(dict(toy=dict(items=items, scale=1, workers=workers)))  # noqa: E731
    Pipeline(stages, cfg(1, 3), tmp_path).run(["count"])
    assert Pipeline(stages, cfg(8, 3), tmp_path).status("count").state == "done"
    assert Pipeline(stages, cfg(8, 4), tmp_path).status("count").state == "stale"


def test_code_change_makes_stage_stale(tmp_path, monkeypatch):
    """Editing a stage's module, or a project module it imports, makes it stale ("code
    changed"); an edit elsewhere does not."""
    import importlib
    import sys

    from pipeline import source_hash

    project = tmp_path / "project"
    (project / "codestages").mkdir(parents=True)
    (project / "codestages" / "__init__.py").write_text("")
    (project / "codestages" / "helper.py").write_text("FACTOR = 2\n")
    (project / "codestages" / "other.py").write_text("UNUSED = 1\n")
    (project / "codestages" / "double.py").write_text(
        "from pipeline.runner import StageResult\nfrom codestages.helper import FACTOR\n\n\n"
        "def double(ctx):\n    return StageResult(metrics={'value': 21 * FACTOR})\n")
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setattr(source_hash, "PROJECT_ROOT", project)
    def pipeline():
        source_hash.source_digest.cache_clear()
        source_hash._imports.cache_clear()
        double = importlib.import_module("codestages.double").double
        return Pipeline([Stage(name="double", run=double, step=1)], Config(dict(run_name=None)), tmp_path / "run")

    pipeline().run(["double"])
    assert pipeline().status("double").state == "done"
    (project / "codestages" / "other.py").write_text("UNUSED = 2\n")
    assert pipeline().status("double").state == "done"
    (project / "codestages" / "helper.py").write_text("FACTOR = 3\n")
    status = pipeline().status("double")
    assert status.state == "stale" and "code changed" in status.reason
    sys.modules.pop("codestages.helper", None)
    sys.modules.pop("codestages.double", None)
    pipeline().run(["double"])
    assert manifest(tmp_path / "run", "double")["metrics"]["value"] == 63
    (project / "codestages" / "double.py").write_text(
        (project / "codestages" / "double.py").read_text() + "\n# a comment is code too\n")
    assert "code changed" in pipeline().status("double").reason


def test_a_headline_figure_names_the_split_it_was_scored_on():
    manifest = {"headline": ["miou", "segmenter mIoU"], "metrics": {"miou": 0.5, "per_class_iou": {"a": 0.5}},
                "info": {"scored_on": "train"}}
    assert headline_figure(manifest) == ("segmenter mIoU (train)", 0.5, {"a": 0.5})
    del manifest["info"]["scored_on"]
    assert headline_figure(manifest)[0] == "segmenter mIoU"
    assert headline_figure({"metrics": {}}) is None


def test_an_artifact_from_an_older_layout_is_stale_and_names_the_stage_to_rerun(tmp_path, monkeypatch):
    """A new version of a kind's contract: the finished producer is stale (it runs again),
    and reading its artifact says which stage to re-run."""
    from pipeline.artifacts import StaleArtifactError

    p = make(tmp_path)
    p.run(p.select("all"))
    assert manifest(tmp_path, "count")["artifact"] == {"kind": "counts", "version": 1, "items": 5}
    assert toy_stages.Counts.read(tmp_path / "count").items == 5
    monkeypatch.setattr(toy_stages.Counts, "VERSION", 2)
    status = make(tmp_path).status("count")
    assert status.state == "stale" and "older layout (version 1, this code reads version 2)" in status.reason
    with pytest.raises(StaleArtifactError, match=r"Re-run stage 'count'"):
        toy_stages.Counts.read(tmp_path / "count")
    assert [o for _, o, _ in make(tmp_path).run(["count", "total"])] == ["ran", "ran"]
    assert manifest(tmp_path, "count")["artifact"]["version"] == 2


def test_a_stage_that_returns_no_artifact_of_its_kind_fails_with_its_name(tmp_path):
    def forgetful(ctx):
        return toy_stages.StageResult(artifacts={"items": 0})

    stages = [Stage("count", forgetful, step=1, artifact=toy_stages.Counts, settings={"toy": None})]
    p = Pipeline(stages, Config(dict(toy=dict(items=1, scale=1))), tmp_path)
    with pytest.raises(PipelineError, match=r"stage 'count' produces counts and returned NoneType"):
        p.run(["count"])


def test_a_consumer_with_two_producers_and_no_select_key_is_refused(tmp_path):
    def nothing(ctx):
        return None

    stages = [Stage("count", nothing, step=1, artifact=toy_stages.Counts, settings={"toy": None}),
              Stage("recount", nothing, step=1.5, artifact=toy_stages.Counts),
              Stage("total", nothing, step=2, consumes=(Input(toy_stages.Counts),), settings={"toy2": None})]
    with pytest.raises(PipelineError, match=r"stage 'total' consumes counts, and count, recount make them"):
        Pipeline(stages, Config(dict(toy=dict(items=1, scale=1), toy2=dict(offset=0))), tmp_path)
