"""The stage runner: executes what the run plan (`pipeline/plan.py`) decides.

A stage runs in its own folder `<run_dir>/<stage>/`. While it runs, `.in_progress.json`
records the fingerprint it runs under: an interrupted stage re-run with the same
fingerprint keeps its finished items (the stage skips them), one re-run under another
fingerprint starts from an empty folder. The manifest is written last: from then on the
stage counts as done.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import sys
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from pipeline import __version__, distributed
from pipeline.atomic import write_json
from pipeline.config import section_dict, section_to_dataclass
from pipeline.errors import PipelineError, UserError
from pipeline.log import get_logger
from pipeline.artifacts import IN_PROGRESS, MANIFEST, Artifact, read_json_record, read_manifest
from pipeline.plan import RunPlan, StageStatus
from pipeline.stage import Stage
from pipeline.versions import package_versions

__all__ = ["Pipeline", "StageContext", "StageResult", "StorageError", "read_manifest", "storage_fault"]


@dataclasses.dataclass
class StageResult:
    """What a stage reports; the runner stores it in the manifest. `artifact`: the typed
    artifact its consumers read (`pipeline/artifacts.py`); the rest is for people."""

    artifact: Artifact | None = None
    artifacts: dict[str, int] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class StageContext:
    """Everything a stage's entry function gets: its config, folders, and its inputs by
    kind (`input_dir('maps')`), never by the name of the stage that made them."""

    stage: Stage
    plan: RunPlan
    out_dir: Path

    @property
    def cfg(self):
        return self.plan.cfg

    @property
    def run_dir(self) -> Path:
        return self.plan.run_dir

    def section(self, name: str) -> dict:
        if name not in self.stage.reads:
            raise PipelineError(
                f"stage '{self.stage.name}' reads config section '{name}' but does not declare it "
                "in its settings: its fingerprint would miss changes to it"
            )
        return section_dict(self.cfg, name)

    def settings(self, name: str | None = None):
        """A section (by default the stage's own) as its settings dataclass, defaults filled in."""
        name = name or self.stage.name
        return section_to_dataclass(self.stage.settings[name], self.section(name), name)

    @functools.cached_property
    def _inputs(self) -> dict[str, list[str]]:
        return self.plan.inputs(self.stage.name)  # upstream states do not change while the stage runs

    def producers(self, kind: str) -> list[str]:
        """The stages whose `kind` this stage uses (optional inputs: those done)."""
        return self._inputs.get(kind, [])

    def has_input(self, kind: str) -> bool:
        return bool(self.producers(kind))

    def input(self, kind: type[Artifact]):
        """The artifact of `kind` this stage consumes, typed (its producer's `record()`)."""
        return kind.read(self.input_dir(kind.KIND))

    def input_dir(self, kind: str) -> Path:
        producers = self.producers(kind)
        if not producers:
            raise PipelineError(f"stage '{self.stage.name}' has no {kind} input in this run (not declared, "
                                "not selected, or an optional producer that is not done)")
        return self.run_dir / producers[0]

    def made_by(self) -> dict[str, str]:
        """What made this stage's output: the command line, the run folder, the stage, the code."""
        return {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "run": self.run_dir.name,
                "stage": self.stage.name, "code_digest": self.plan.code_digest(self.stage)}

    def input_runs(self) -> dict[str, dict[str, str]]:
        """{upstream stage: its fingerprint and run id}: where an artifact came from."""
        return {name: {"fingerprint": m["fingerprint"], "run_id": m["run_id"]}
                for name in self.plan.upstream(self.stage.name) if not self.plan.is_off(name)
                for m in [read_manifest(self.run_dir / name)]}


class Pipeline(RunPlan):
    """A run plan that can also run its stages."""

    def __init__(self, stages, cfg, run_dir: Path):
        super().__init__(stages, cfg, run_dir)
        self.log = get_logger()

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
        for u in self.upstream(name):
            st = self.status(u)
            if st.state not in ("done", "off"):
                raise PipelineError(
                    f"stage '{name}' needs upstream '{u}', which is {st.state} ({st.reason}). "
                    f"Run `--stage {u}` first, or `--stage all`."
                )

    def _run_stage(self, stage: Stage, status: StageStatus, force: bool) -> float:
        attempt = _Attempt(self, stage, status, force)
        self.log.info("[%s] %s (%s)", stage.name, "resuming" if attempt.resumable else "running", status.reason)
        ctx = StageContext(stage=stage, plan=self, out_dir=attempt.out_dir)
        try:
            result = stage.run(ctx) if stage.distributed or distributed.is_main() else None
        except BaseException as error:
            attempt.failed(error, self.log)
            raise
        if not distributed.is_main():
            distributed.barrier()  # rank 0 writes the manifest
            return attempt.seconds()
        total = attempt.finish(self._manifest(stage, attempt, result))
        self.log.info("[%s] done in %.1f s%s: %s", stage.name, total,
                      f" over {len(attempt.attempts)} attempts" if len(attempt.attempts) > 1 else "",
                      ", ".join(f"{k}={v}" for k, v in result.artifacts.items()))
        return total

    def _manifest(self, stage: Stage, attempt: "_Attempt", result: StageResult) -> dict:
        if stage.artifact is not None and getattr(result.artifact, "KIND", None) != stage.produces:
            raise PipelineError(f"stage '{stage.name}' produces {stage.produces} and returned "
                                f"{type(result.artifact).__name__} in StageResult.artifact, not a "
                                f"{stage.artifact.__name__}")
        return {
            "stage": stage.name,
            "step": stage.step,
            "produces": stage.produces,
            "artifact": result.artifact.record() if result.artifact is not None else None,
            "headline": stage.headline,
            "fingerprint": attempt.identity["fingerprint"],
            "run_id": uuid.uuid4().hex,
            "version": __version__,
            "package_versions": package_versions(),  # of the packages that change numbers
            "section_hashes": self.section_hashes(stage),
            "code_digest": self.code_digest(stage),
            "config": self.settings_values(stage),
            "upstream": attempt.identity["upstream"],
            "external": stage.external(self.cfg) if stage.external else {},
            "resumed": attempt.resumable,
            "artifacts": result.artifacts,
            "metrics": result.metrics,
            "info": result.info,
        }


class _Attempt:
    """One attempt at a stage: its folder and in-progress marker, resumed or fresh, and
    the time of every attempt so far."""

    def __init__(self, plan: RunPlan, stage: Stage, status: StageStatus, force: bool):
        self.stage, self.out_dir = stage, plan.run_dir / stage.name
        self.marker = self.out_dir / IN_PROGRESS
        upstream = {u: {"fingerprint": plan.fingerprint(u), "run_id": read_manifest(plan.run_dir / u)["run_id"]}
                    for u in plan.used_upstream(stage)}
        self.identity = {"fingerprint": plan.fingerprint(stage.name), "upstream": upstream}
        previous = read_json_record(self.marker) or {}  # a damaged marker: nothing to resume
        self.resumable = (not force and status.manifest is None
                          and {k: previous.get(k) for k in self.identity} == self.identity)
        self.attempts = _closed_attempts(previous.get("attempts", []), self.out_dir) if self.resumable else []
        self.started = datetime.now(timezone.utc).isoformat()
        distributed.barrier()  # every rank has read the marker before rank 0 rewrites it
        if distributed.is_main():
            if self.out_dir.exists() and not self.resumable:
                shutil.rmtree(self.out_dir)  # outputs of another config or upstream: never mix them
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.marker, {**self.identity, "attempts": [*self.attempts, {"started_at": self.started}]})
        distributed.barrier()
        self.t0 = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def failed(self, error: BaseException, log) -> None:
        """Record the attempt's time; a disk fault becomes a StorageError naming the path."""
        seconds = self.seconds()
        how = "stopped by Ctrl-C" if isinstance(error, KeyboardInterrupt) else "failed"
        if isinstance(error, UserError):  # a config or data fault: nothing to resume until it is fixed
            log.error("[%s] %s after %.1f s: fix the config or data named below, then re-run (items already "
                      "written are kept)", self.stage.name, how, seconds)
        else:
            log.error("[%s] %s after %.1f s; finished items are kept and a re-run resumes", self.stage.name, how,
                      seconds)
        if distributed.is_main() and self.marker.is_file():
            try:
                write_json(self.marker, {**self.identity, "attempts": [
                    *self.attempts, {"started_at": self.started, "seconds": round(seconds, 3)}]})
            except OSError:
                pass  # the disk that failed the stage may not take this record either
        fault = storage_fault(error, self.out_dir)
        if fault is not None:
            raise StorageError(f"[{self.stage.name}] {fault}") from None

    def finish(self, manifest: dict) -> float:
        """Write the manifest (last: the stage counts as done from here); the total time."""
        self.attempts.append({"started_at": self.started, "seconds": round(self.seconds(), 3)})
        total = sum(a["seconds"] for a in self.attempts)
        manifest.update(started_at=self.attempts[0]["started_at"], duration_s=round(total, 3),
                        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        attempts=self.attempts)
        try:
            write_json(self.out_dir / MANIFEST, manifest)
        except OSError as error:
            raise StorageError(f"[{self.stage.name}] {storage_fault(error, self.out_dir) or error}") from None
        self.marker.unlink(missing_ok=True)
        distributed.barrier()
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
