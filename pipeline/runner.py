"""The stage runner: an on-disk artifact cache keyed by config fingerprints.

Each stage is declared once (`stages/__init__.py`) with its upstream stages and the
config sections it reads. Its fingerprint hashes those sections, its upstream stages'
fingerprints, the package version and the source of the code it runs
(`pipeline/source_hash.py`). A finished stage writes
`<run_dir>/<stage>/manifest.json` last; a stage is *done* when that manifest's
fingerprint matches the config and its upstream stages are done and unchanged since.

While a stage runs, `.in_progress.json` records the fingerprint it runs under: an
interrupted stage re-run with the same fingerprint keeps its finished items (the
stage skips them), one re-run under another fingerprint starts from an empty folder.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import importlib
import json
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from mmengine.config import Config

from pipeline import __version__, distributed
from pipeline.atomic import write_json
from pipeline.config import check_top_level_keys, plugin_digest, section_dict
from pipeline.errors import PipelineError
from pipeline.log import get_logger
from pipeline.source_hash import source_digest
from pipeline.versions import package_versions

MANIFEST = "manifest.json"
IN_PROGRESS = ".in_progress.json"


@dataclasses.dataclass(frozen=True)
class Stage:
    """A stage: `entry` is 'module:function', imported only when the stage runs.

    Under torchrun, a `distributed` stage runs on every rank (it shards its own work);
    any other stage runs on rank 0 while the other ranks wait.
    """

    name: str
    entry: str
    upstream: tuple[str, ...] = ()
    # Stages used when they are done (the report shows the segmenter if it ran); once
    # used, they count as upstream: re-running them makes this stage stale.
    optional_upstream: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    description: str = ""
    distributed: bool = False
    # 'section.key' entries that say how to run, not what to compute (worker counts,
    # parallel backends): left out of the fingerprint, so changing them re-runs nothing.
    execution_keys: tuple[str, ...] = ()
    # (metric key, label): the figure the run's summary table shows for this stage.
    headline: tuple[str, str] | None = None
    # Whether the config uses this stage at all (None: always). An unused stage is 'off':
    # never run, and no upstream of anything.
    enabled: Callable[[Config], bool] | None = None
    # Inputs from outside the run folder that the output depends on (an external run's
    # model id, say): hashed into the fingerprint, so a change makes the stage stale.
    external: Callable[[Config], dict] | None = None
    # {config section: 'module:SettingsDataclass'} for the sections this stage reads:
    # --cfg-options may set any field of them, listed in a config file or not.
    settings: dict[str, str] = dataclasses.field(default_factory=dict)
    # The stage writes a pseudo-mask data set (`<stage>/pseudo_masks/`, pipeline/artifacts.py)
    # that `train_segmenter.pseudo_masks` may name; the segmenter's upstream and the
    # report's chain follow from these flags.
    makes_pseudo_masks: bool = False

    def load(self) -> Callable[["StageContext"], "StageResult"]:
        module, _, function = self.entry.partition(":")
        return getattr(importlib.import_module(module), function)


@dataclasses.dataclass
class StageResult:
    """What a stage reports; the runner stores it in the manifest."""

    artifacts: dict[str, int] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class StageContext:
    """Everything a stage's entry function gets: its config, folders and upstream."""

    stage: Stage
    cfg: Config
    run_dir: Path
    out_dir: Path
    available_upstream: tuple[str, ...] = ()  # upstream + the optional upstream stages that are done

    def section(self, name: str) -> dict:
        if name not in self.stage.reads:
            raise PipelineError(
                f"stage '{self.stage.name}' reads config section '{name}' but does not declare it "
                "in `reads`: its fingerprint would miss changes to it"
            )
        return section_dict(self.cfg, name)

    def upstream_dir(self, name: str) -> Path:
        if name not in self.stage.upstream + self.stage.optional_upstream:
            raise PipelineError(f"stage '{self.stage.name}' does not declare '{name}' as upstream")
        if name not in self.available_upstream:
            raise PipelineError(f"optional upstream '{name}' of '{self.stage.name}' is not done")
        return self.run_dir / name

    def has_upstream(self, name: str) -> bool:
        return name in self.available_upstream

    def upstream_manifest(self, name: str) -> dict:
        return read_manifest(self.upstream_dir(name))

    def upstream_runs(self) -> dict[str, dict[str, str]]:
        """{upstream stage: its fingerprint and run id}: where an artifact came from."""
        return {name: {"fingerprint": m["fingerprint"], "run_id": m["run_id"]}
                for name in self.stage.upstream for m in [self.upstream_manifest(name)]}


@dataclasses.dataclass(frozen=True)
class StageStatus:
    state: str  # 'done' | 'stale' | 'missing' | 'off'
    reason: str
    manifest: dict | None = None


def read_manifest(stage_dir: Path) -> dict | None:
    """The stage's manifest; None when absent or unreadable (a damaged manifest counts as
    'not done': the stage runs again, and `--status` says why)."""
    return read_json_record(stage_dir / MANIFEST, required=("fingerprint", "run_id"))


def read_json_record(path: Path, required: Sequence[str] = ()) -> dict | None:
    """A JSON object from `path`, or None when it is absent, does not parse, or lacks a
    required key: a record that cannot be trusted is no record."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or any(k not in data for k in required):
        return None
    return data


def _hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Pipeline:
    def __init__(self, stages: Sequence[Stage], cfg: Config, run_dir: Path):
        self.stages = {s.name: s for s in stages}
        if len(self.stages) != len(stages):
            raise PipelineError("two stages share a name")
        seen: set[str] = set()
        for s in stages:
            for u in s.upstream + s.optional_upstream:
                if u not in seen:
                    raise PipelineError(f"stage '{s.name}' lists upstream '{u}', which is not declared before it")
            seen.add(s.name)
        check_top_level_keys(cfg, {sec for s in stages for sec in s.reads})
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.log = get_logger()
        self.plugins = plugin_digest(cfg)  # the user's plug-in modules, read once

    # ---- fingerprints and status -------------------------------------------------

    def section_hashes(self, stage: Stage) -> dict[str, str]:
        hashes = {}
        for sec in stage.reads:
            values = section_dict(self.cfg, sec)
            hashes[sec] = _hash({k: v for k, v in values.items() if f"{sec}.{k}" not in stage.execution_keys})
        return hashes

    @staticmethod
    def code_digest(stage: Stage) -> str:
        return source_digest(stage.entry.partition(":")[0])

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

    def is_off(self, name: str) -> bool:
        stage = self.stages[name]
        return stage.enabled is not None and not stage.enabled(self.cfg)

    def used_upstream(self, stage: Stage) -> list[str]:
        """The required upstream stages the config uses, and the optional ones that are done."""
        return [*(u for u in stage.upstream if not self.is_off(u)),
                *(u for u in stage.optional_upstream if self.status(u).state == "done")]

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
        for u in self.used_upstream(stage):
            upstream = self.status(u)
            if upstream.state != "done":
                return StageStatus("stale", f"upstream '{u}' is {upstream.state}", manifest)
            if upstream.manifest["run_id"] != manifest["upstream"][u]["run_id"]:
                return StageStatus("stale", f"upstream '{u}' was re-run after this stage", manifest)
        return StageStatus("done", f"finished {manifest['finished_at']}", manifest)

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
        stages planned to run before it (`plan`); `run` decides after they ran. The one
        rule both `plan` (--dry-run) and `run` follow."""
        stage, st = self.stages[name], self.status(name)
        rerun_upstream = [u for u in stage.upstream + stage.optional_upstream if u in set(will_run)]
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
        """(stage, action, reason) for each selected stage, in order, as `run` would do."""
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

    # ---- running -------------------------------------------------------------------

    def run(self, selected: Iterable[str], force: bool = False) -> list[tuple[str, str, float]]:
        """Run the selected stages in pipeline order; returns (stage, outcome, seconds)."""
        selected = list(selected)
        summary = []
        for name in self.stages:
            if name not in selected:
                continue
            action, reason = self.decision(name, force)
            if action == "off":
                self.log.info("[%s] off (%s)", name, reason)
                summary.append((name, "off", 0.0))
                continue
            if action == "skip":
                self.log.info("[%s] done, skipped (%s; --force re-runs it)", name, reason)
                summary.append((name, "skipped (done)", 0.0))
                continue
            self._check_upstream(name)
            seconds = self._run_stage(self.stages[name], self.status(name), force)
            summary.append((name, "ran", seconds))
        return summary

    def _check_upstream(self, name: str) -> None:
        for u in self.stages[name].upstream:
            st = self.status(u)
            if st.state not in ("done", "off"):
                raise PipelineError(
                    f"stage '{name}' needs upstream '{u}', which is {st.state} ({st.reason}). "
                    f"Run `--stage {u}` first, or `--stage all`."
                )

    def _run_stage(self, stage: Stage, status: StageStatus, force: bool) -> float:
        out_dir = self.run_dir / stage.name
        fingerprint = self.fingerprint(stage.name)
        used = self.used_upstream(stage)
        upstream = {
            u: {"fingerprint": self.fingerprint(u), "run_id": read_manifest(self.run_dir / u)["run_id"]}
            for u in used
        }
        marker = out_dir / IN_PROGRESS
        identity = {"fingerprint": fingerprint, "upstream": upstream}
        previous = read_json_record(marker) or {}  # a damaged marker: nothing to resume
        resumable = (
            not force
            and status.manifest is None
            and {k: previous.get(k) for k in identity} == identity
        )
        attempts = _closed_attempts(previous.get("attempts", []), out_dir) if resumable else []
        started = datetime.now(timezone.utc)
        distributed.barrier()  # every rank has read the marker before rank 0 rewrites it
        if distributed.is_main():
            if out_dir.exists() and not resumable:
                shutil.rmtree(out_dir)  # outputs of another config or upstream: never mix them
            out_dir.mkdir(parents=True, exist_ok=True)
            write_json(marker, {**identity, "attempts": [*attempts, {"started_at": started.isoformat()}]})
        distributed.barrier()

        t0 = time.perf_counter()
        self.log.info("[%s] %s (%s)", stage.name, "resuming" if resumable else "running", status.reason)
        ctx = StageContext(stage=stage, cfg=self.cfg, run_dir=self.run_dir, out_dir=out_dir,
                           available_upstream=tuple(used))
        try:
            result = stage.load()(ctx) if stage.distributed or distributed.is_main() else None
        except BaseException as error:
            seconds = time.perf_counter() - t0
            if isinstance(error, KeyboardInterrupt):
                self.log.error("[%s] stopped by Ctrl-C after %.1f s; finished items are kept and a re-run "
                               "resumes", stage.name, seconds)
            else:
                self.log.error("[%s] failed after %.1f s; finished items are kept and a re-run resumes",
                               stage.name, seconds)
            if distributed.is_main() and marker.is_file():
                try:
                    write_json(marker, {**identity, "attempts": [
                        *attempts, {"started_at": started.isoformat(), "seconds": round(seconds, 3)}]})
                except OSError:
                    pass  # the disk that failed the stage may not take this record either
            fault = storage_fault(error, out_dir)
            if fault is not None:
                raise StorageError(f"[{stage.name}] {fault}") from None
            raise
        if not distributed.is_main():
            distributed.barrier()  # rank 0 writes the manifest
            return time.perf_counter() - t0
        seconds = time.perf_counter() - t0
        attempts.append({"started_at": started.isoformat(), "seconds": round(seconds, 3)})
        total = sum(a["seconds"] for a in attempts)
        manifest = {
            "stage": stage.name,
            "fingerprint": fingerprint,
            "run_id": uuid.uuid4().hex,
            "version": __version__,
            "package_versions": package_versions(),  # of the packages that change numbers
            "section_hashes": self.section_hashes(stage),
            "code_digest": self.code_digest(stage),
            "config": {sec: section_dict(self.cfg, sec) for sec in stage.reads},
            "upstream": upstream,
            "external": stage.external(self.cfg) if stage.external else {},
            "started_at": attempts[0]["started_at"],
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "duration_s": round(total, 3),  # over every attempt
            "attempts": attempts,
            "resumed": resumable,
            "artifacts": result.artifacts,
            "metrics": result.metrics,
            "info": result.info,
        }
        try:
            write_json(out_dir / MANIFEST, manifest)  # last: the stage counts as done from here
        except OSError as error:
            raise StorageError(f"[{stage.name}] {storage_fault(error, out_dir) or error}") from None
        marker.unlink(missing_ok=True)
        distributed.barrier()
        self.log.info("[%s] done in %.1f s%s: %s", stage.name, total,
                      f" over {len(attempts)} attempts" if len(attempts) > 1 else "",
                      ", ".join(f"{k}={v}" for k, v in result.artifacts.items()))
        return total


class StorageError(PipelineError):
    """The disk refused a write: full, read-only, or not ours."""


def storage_fault(error: BaseException, out_dir: Path) -> str | None:
    """A message naming the path and what to do when `error` is the disk's (full, read-only,
    permission denied), else None. torch.save reports a full disk as a RuntimeError from
    its C++ stream, so the free space is checked too."""
    number = getattr(error, "errno", None)
    where = getattr(error, "filename", None) or out_dir
    free = _free_bytes(out_dir)
    if number in (errno.ENOSPC, errno.EDQUOT) or (isinstance(error, RuntimeError) and free is not None
                                                   and free < 1 << 20):
        return (f"the disk is full: no space left writing {where} (free: {free or 0} bytes). "
                "Free some space or move the run (--work-dir) to a larger disk, then run again: finished items "
                "are kept and the stage resumes.")
    if number == errno.EROFS:
        return (f"{where} is on a read-only file system. Choose a writable --work-dir (or work_dir in the "
                "config), then run again.")
    if number in (errno.EACCES, errno.EPERM):
        return (f"permission denied writing {where}. Make the run folder writable for this user, or choose "
                "another --work-dir, then run again.")
    return None


def _free_bytes(path: Path) -> int | None:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return None


def _closed_attempts(attempts: list[dict], out_dir: Path) -> list[dict]:
    """Earlier attempts with their duration. One that was killed (SIGKILL, power loss)
    could not record it: it is counted up to the last file it wrote, a lower bound."""
    closed = []
    for attempt in attempts:
        if "seconds" not in attempt:
            begun = datetime.fromisoformat(attempt["started_at"]).timestamp()
            last_write = max((p.stat().st_mtime for p in out_dir.rglob("*") if p.is_file()), default=begun)
            attempt = {**attempt, "seconds": round(max(last_write - begun, 0.0), 3), "killed": True}
        closed.append(attempt)
    return closed
