"""The run plan: which stages a config uses, who feeds whom, and what is done.

The stages' records (`pipeline/stage.py`) say what each consumes and produces; the plan
resolves each input to its producer, so a stage's upstream, whether it is on, and the
report's chain follow from those records and the config. A stage's fingerprint hashes
its settings (defaults filled in, execution keys left out), its upstream stages'
fingerprints, the package version and the source of the code it runs
(`pipeline/source_hash.py`). A finished stage writes `<run_dir>/<stage>/manifest.json`
last; a stage is *done* when that manifest's fingerprint matches and its upstream stages
are done and unchanged since. `pipeline/runner.py` executes what the plan decides.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from mmengine.config import Config

from pipeline import __version__
from pipeline.artifacts import IN_PROGRESS, MANIFEST, read_manifest
from pipeline.config import check_top_level_keys, plugin_digest, section_dict, section_to_dataclass
from pipeline.errors import PipelineError
from pipeline.source_hash import source_digest
from pipeline.stage import Stage, selected_producer



@dataclasses.dataclass(frozen=True)
class StageStatus:
    state: str  # 'done' | 'stale' | 'missing' | 'off'
    reason: str
    manifest: dict | None = None


def headline_figure(manifest: dict) -> tuple[str, float | None, dict | None] | None:
    """A stage's headline figure from its manifest: (label, value, per-class IoU), the
    label naming the split it was scored on where the stage records one (`info.scored_on`),
    so a segmenter scored on its training images for want of a val split says so."""
    if not manifest.get("headline"):
        return None
    key, label = manifest["headline"]
    split = manifest.get("info", {}).get("scored_on")
    metrics = manifest.get("metrics", {})
    return (f"{label} ({split})" if split else label), metrics.get(key), metrics.get("per_class_iou")


def _hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class RunPlan:
    """The stages of one config in one run folder: the graph, fingerprints and states."""

    def __init__(self, stages: Sequence[Stage], cfg: Config, run_dir: Path):
        self.stages = {s.name: s for s in sorted(stages, key=lambda s: s.step)}
        if len(self.stages) != len(stages):
            raise PipelineError("two stages share a name")
        check_top_level_keys(cfg, {sec for s in stages for sec in s.reads})
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.plugins = plugin_digest(cfg)  # the user's plug-in modules, read once
        self._section_hashes: dict[str, dict[str, str]] = {}
        self._inputs = {name: self._resolve_inputs(stage) for name, stage in self.stages.items()}
        self._on = self._stages_on()

    # ---- the graph -------------------------------------------------------------------

    def producers(self, kind: str, before: float | None = None) -> list[str]:
        """The stages that produce `kind`, in order (those before step `before`)."""
        return [n for n, s in self.stages.items() if s.produces == kind and (before is None or s.step < before)]

    def _resolve_inputs(self, stage: Stage) -> list[tuple[str, str, bool]]:
        """[(kind, producer, optional)] for each of the stage's inputs."""
        resolved = []
        for given in stage.consumes:
            producers = self.producers(given.kind, before=stage.step)
            if given.select:
                names = selected_producer(self.cfg, stage, given, producers)
            elif given.every:
                names = producers
            else:
                names = producers
            if not names and not (given.optional or given.select):
                raise PipelineError(f"stage '{stage.name}' consumes {given.kind}, and no stage before it "
                                    "produces it")
            if len(names) > 1 and not given.every:
                raise PipelineError(f"stage '{stage.name}' consumes {given.kind.replace('_', '-')}, and "
                                    f"{', '.join(names)} make them before it: give the input a `select` key "
                                    "so the config names one")
            resolved += [(given.kind, n, given.optional) for n in names]
        return resolved

    def _stages_on(self) -> dict[str, bool]:
        """An on-demand stage is on when a stage that is on needs its product."""
        on: dict[str, bool] = {}
        for name in reversed(self.stages):
            needed = any(on[c] and any(p == name and not opt for _, p, opt in self._inputs[c]) for c in on)
            on[name] = not self.stages[name].on_demand or needed
        return on

    def upstream(self, name: str) -> list[str]:
        """The stages this one needs done before it runs."""
        return list(dict.fromkeys(p for _, p, optional in self._inputs[name] if not optional))

    def optional_upstream(self, name: str) -> list[str]:
        """The stages used when done (the report's), less those needed anyway."""
        required = self.upstream(name)
        return list(dict.fromkeys(p for _, p, optional in self._inputs[name] if optional and p not in required))

    def inputs(self, name: str) -> dict[str, list[str]]:
        """{kind: [producer]} of the inputs the stage uses now (optional ones when done)."""
        used = set(self.used_upstream(self.stages[name]))
        out: dict[str, list[str]] = {}
        for kind, producer, _ in self._inputs[name]:
            if producer in used:
                out.setdefault(kind, []).append(producer)
        return out

    def is_off(self, name: str) -> bool:
        return not self._on[name]

    def used_upstream(self, stage: Stage) -> list[str]:
        """The required upstream stages the config uses, and the optional ones that are done."""
        return [*(u for u in self.upstream(stage.name) if not self.is_off(u)),
                *(u for u in self.optional_upstream(stage.name) if self.status(u).state == "done")]

    def chain(self) -> list[Stage]:
        """The stages whose headline figure makes the run's mIoU chain, in order, those on."""
        return [s for n, s in self.stages.items() if s.headline and not self.is_off(n)]

    # ---- fingerprints and status -------------------------------------------------

    def settings_values(self, stage: Stage) -> dict[str, dict]:
        """Each section the stage reads, with its settings' defaults filled in."""
        values = {}
        for section, cls in stage.settings.items():
            raw = section_dict(self.cfg, section)
            values[section] = dataclasses.asdict(section_to_dataclass(cls, raw, section)) if cls else raw
        return values

    def section_hashes(self, stage: Stage) -> dict[str, str]:
        if stage.name not in self._section_hashes:  # the config does not change under a plan
            self._section_hashes[stage.name] = {
                sec: _hash({k: v for k, v in values.items() if f"{sec}.{k}" not in stage.execution_keys})
                for sec, values in self.settings_values(stage).items()}
        return self._section_hashes[stage.name]

    @staticmethod
    def code_digest(stage: Stage) -> str:
        return source_digest(stage.module)

    def fingerprint(self, name: str) -> str:
        stage = self.stages[name]
        identity = {
            "stage": name,
            "sections": self.section_hashes(stage),
            "upstream": {u: self.fingerprint(u) for u in self.used_upstream(stage)},
            "version": __version__,
            "code": self.code_digest(stage),
        }
        if stage.external:
            identity["external"] = stage.external(self.cfg)
        if self.plugins is not None:
            identity["plugins"] = self.plugins
        return _hash(identity)

    def status(self, name: str) -> StageStatus:
        stage = self.stages[name]
        if self.is_off(name):
            return StageStatus("off", "not used by this config")
        out_dir = self.run_dir / name
        manifest = read_manifest(out_dir)
        if manifest is None:
            if (out_dir / MANIFEST).is_file():
                return StageStatus("missing", f"manifest unreadable ({out_dir / MANIFEST} is damaged or cut "
                                              "short): the stage runs again")
            if (out_dir / IN_PROGRESS).is_file():
                return StageStatus("missing", "interrupted; the next run resumes it")
            return StageStatus("missing", "never run")
        if manifest["fingerprint"] != self.fingerprint(name):
            return StageStatus("stale", self._why_stale(stage, manifest), manifest)
        if stage.artifact is not None and (layout := stage.artifact.stale_reason(manifest)):
            return StageStatus("stale", layout, manifest)
        for u in self.used_upstream(stage):
            upstream = self.status(u)
            if upstream.state != "done":
                return StageStatus("stale", f"upstream '{u}' is {upstream.state}", manifest)
            if upstream.manifest["run_id"] != manifest["upstream"][u]["run_id"]:
                return StageStatus("stale", f"upstream '{u}' was re-run after this stage", manifest)
        return StageStatus("done", f"finished {manifest['finished_at']}", manifest)

    def statuses(self) -> list[tuple[Stage, StageStatus]]:
        """Every stage with its state, in order (`--status`, the report)."""
        return [(stage, self.status(name)) for name, stage in self.stages.items()]

    def _why_stale(self, stage: Stage, manifest: dict) -> str:
        reasons = []
        if manifest.get("version") != __version__:
            reasons.append(f"package version {manifest.get('version')} -> {__version__}")
        if manifest.get("code_digest") != self.code_digest(stage):
            reasons.append("code changed")
        old_sections = manifest.get("section_hashes", {})
        for sec, digest in self.section_hashes(stage).items():
            if old_sections.get(sec) != digest:
                reasons.append(f"config section '{sec}' changed")
        for u in self.used_upstream(stage):
            if u not in manifest.get("upstream", {}):
                reasons.append(f"upstream '{u}' finished after this stage")
            elif manifest["upstream"][u].get("fingerprint") != self.fingerprint(u):
                reasons.append(f"upstream '{u}' changed")
        if stage.external and manifest.get("external") != stage.external(self.cfg):
            reasons.append("an input outside the run folder changed")
        return "; ".join(reasons) or "fingerprint changed"

    # ---- selection and planning ---------------------------------------------------

    def select(self, spec: str) -> list[str]:
        if spec == "all":
            return list(self.stages)
        names = [n.strip() for n in spec.split(",") if n.strip()]
        unknown = [n for n in names if n not in self.stages]
        if unknown or not names:
            raise PipelineError(
                f"unknown stage(s) {', '.join(unknown) or repr(spec)}; stages: all, {', '.join(self.stages)}"
            )
        return [n for n in self.stages if n in names]  # pipeline order, not command-line order

    def decision(self, name: str, force: bool = False, will_run: Iterable[str] = ()) -> tuple[str, str]:
        """(action, reason) for one stage: 'off', 'skip', 'run' or 'resume'. `will_run`:
        stages planned to run before it (`plan`); the runner decides after they ran. The
        one rule both `plan` (--dry-run) and the runner follow."""
        st = self.status(name)
        will_run = set(will_run)
        rerun_upstream = [u for u in self.upstream(name) + self.optional_upstream(name) if u in will_run]
        if st.state == "off":
            return "off", st.reason
        if force:
            return "run", "--force"
        if rerun_upstream:
            return "run", f"upstream '{rerun_upstream[0]}' runs first"
        if st.state == "done":
            return "skip", st.reason
        resumes = st.manifest is None and (self.run_dir / name / IN_PROGRESS).is_file()
        return ("resume" if resumes else "run"), f"{st.state}: {st.reason}"

    def plan(self, selected: Iterable[str], force: bool = False) -> list[tuple[str, str, str]]:
        """(stage, action, reason) for each selected stage, in order, as a run would do."""
        selected = set(selected)
        will_run: set[str] = set()
        rows = []
        for name in self.stages:
            if name not in selected:
                continue
            action, reason = self.decision(name, force, will_run)
            if action not in ("skip", "off"):
                will_run.add(name)
            rows.append((name, action, reason))
        return rows
