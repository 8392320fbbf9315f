#!/usr/bin/env python
"""Run the pseudo-mask pipeline, or the stages of it that are missing or stale.

    python run_pipeline.py                                  # all stages, default config
    python run_pipeline.py --config configs/x.py --stage prepare --force
    python run_pipeline.py --status                         # done / stale / missing, and why
    python run_pipeline.py --cfg-options dataset.num_train=100 --dry-run
    python run_pipeline.py --show 000123                    # one image's chain as a PNG panel
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from mmengine.config import DictAction

from pipeline import distributed
from pipeline.config import check_sections, load_config, section_dict, section_to_dataclass
from pipeline.atomic import save_image

from pipeline.errors import PipelineError, UserError
from pipeline.log import setup_logging
from pipeline.run_lock import RunFolderBusy, RunLock, describe_holder
from pipeline.artifacts import PreparedData, Report, RunFolder, read_manifest
from pipeline.plan import headline_figure
from pipeline.runner import Pipeline, StorageError, storage_fault
from pipeline.stage import settings_schemas, stages_for
import stages  # noqa: F401,E402  (registers the built-in stages)

DEFAULT_CONFIG = "configs/default.py"

class KeyValueAction(DictAction):
    """mmengine's DictAction, with a usage error instead of a traceback for an item without '='."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            if "=" not in item:
                parser.error(f"{option_string} {item!r}: expected KEY=VALUE, e.g. dataset.num_train=100")
        super().__call__(parser, namespace, values, option_string)


def stage_listing(argv: list[str] | None) -> str:
    """The stages of the config on the command line, its plug-ins' too, as they declare
    themselves (the built-in ones where the config does not load: the run says why)."""
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", default=DEFAULT_CONFIG)
    try:
        stages = stages_for(load_config(config.parse_known_args(argv)[0].config))
    except UserError:
        stages = stages_for()
    rows = [f"  {s.name:<20} {s.description}" + (" (on when needed)" if s.on_demand else "") for s in stages]
    return "stages, in order:\n" + "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    asks_help = {"-h", "--help"} & set(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, epilog=stage_listing(argv) if asks_help else None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="pipeline config (an mmengine Python config)")
    parser.add_argument("--stage", default="all", help="'all' or a comma-separated list of the stages below")
    parser.add_argument("--force", action="store_true", help="re-run the selected stages even when done")
    parser.add_argument("--work-dir", help="the run folder (default: <work_dir>/<run_name> from the config)")
    parser.add_argument("--status", action="store_true", help="print each stage's state and why, then exit")
    parser.add_argument("--dry-run", action="store_true", help="print what the command would run, then exit")
    parser.add_argument("--show", metavar="IMAGE_ID",
                        help="write one image's chain (image, class maps, pseudo-mask, GT, segmenter prediction) "
                             "as a PNG panel into <run>/show/ and exit")
    parser.add_argument("--cfg-options", nargs="+", action=KeyValueAction, default={},
                        help="override config keys, e.g. dataset.num_train=100 (keys must exist)")
    return parser.parse_args(argv)

def run_dir_for(cfg, config_path: str, work_dir: str | None) -> Path:
    if work_dir:
        return Path(work_dir)
    return Path(cfg.get("work_dir", "outputs")) / (cfg.get("run_name") or Path(config_path).stem)

def show(run_dir: Path, image_id: str) -> Path:
    """Draw one image's chain from whatever the run folder holds; returns the PNG's path."""
    from pipeline.report.chain import load_chain  # plotting and data imports only for --show
    from pipeline.report.panels import chain_panel

    run = RunFolder(run_dir)
    if not run.has(PreparedData):
        raise PipelineError(f"--show needs a prepared data set in {run_dir}; run the first stage first")
    dataset = run.get(PreparedData).load()
    path = run_dir / "show" / f"{image_id}.png"
    save_image(path, chain_panel(load_chain(run_dir, dataset, image_id), dataset.palette), format="PNG")
    return path

def summary_table(summary: list[tuple[str, str, float]], pipeline: Pipeline) -> str:
    """One row per stage: what happened, its time (over every attempt, also for a stage
    done by an earlier invocation) and its headline figure; then the total."""
    run_dir = pipeline.run_dir
    rows = [f"  {'stage':<20} {'outcome':<22} {'time':>9}  result"]
    total = 0.0
    for name, outcome, seconds in summary:
        manifest = read_manifest(run_dir / name) or {}
        if outcome.startswith("skipped"):
            seconds = manifest.get("duration_s", 0.0)
            outcome = "done earlier"
        attempts = len(manifest.get("attempts", ()))
        if attempts > 1:
            outcome = f"{outcome}, {attempts} tries"
        total += seconds
        result = ""
        label, value, _ = headline_figure(manifest) or ("", None, None)  # the manifest records the headline
        if isinstance(value, float):
            result = f"{label} {100 * value:.1f}%"
        rows.append(f"  {name:<20} {outcome:<22} {seconds:>7.1f} s  {result}")
    rows.append(f"  {'total':<20} {'':<22} {total:>7.1f} s")
    return "\n".join(rows)

@contextlib.contextmanager
def run_folder_lock(run_dir: Path):
    """The run folder's lock (pipeline/run_lock.py), taken by rank 0 for every rank of
    its torchrun group: the others learn whether it got it."""
    lock = RunLock(run_dir)
    refusal = None
    if distributed.is_main():
        try:
            lock.acquire()
        except RunFolderBusy as busy:
            refusal = str(busy)
        except OSError as error:
            refusal = storage_fault(error, run_dir) or f"cannot lock {lock.path}: {error}"
    refusal = distributed.broadcast_object(refusal)
    if refusal is not None:
        raise RunFolderBusy(refusal)
    try:
        yield
    finally:
        lock.release()

def check_values(cfg, data: bool) -> None:
    """Every value of the config against its settings (types and ranges): a bad
    --cfg-options value fails here with one line, also under --dry-run and --status.
    `data`: also look at the data the data set reads (its root, layout and label files)."""
    from pipeline.datasets import build_data_source
    from pipeline.localizer_options import BUILT_IN_OPTIONS

    check_sections(cfg, settings_schemas(stages_for(cfg)))
    if "dataset" in cfg:
        source = build_data_source(section_dict(cfg, "dataset"))
        if data:
            source.check()
    if "localizer" in cfg:
        localizer = section_dict(cfg, "localizer")
        kind = localizer.get("type")
        if isinstance(kind, str) and kind in BUILT_IN_OPTIONS:  # checked without loading torch
            section_to_dataclass(BUILT_IN_OPTIONS[kind], dict(localizer.get(kind) or {}), f"localizer.{kind}")
        else:  # a plug-in (or a typo): the registry has it, and says which types exist
            from pipeline.models import localizer_record

            localizer_record(localizer)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options)
        check_values(cfg, data=not (args.status or args.show))
        run_dir = run_dir_for(cfg, args.config, args.work_dir)
        read_only = args.status or args.dry_run or bool(args.show)
        if not read_only:
            distributed.init_from_env()  # under torchrun: one process per device
        main_rank = distributed.is_main()
        log = setup_logging(None if read_only or not main_rank else run_dir,
                            cfg.get("log_level", "INFO") if main_rank else "WARNING")
        pipeline = Pipeline(stages_for(cfg), cfg, run_dir)
        selected = pipeline.select(args.stage)
        if args.status:
            print(f"run folder: {run_dir}")
            holder = RunLock(run_dir).holder()
            for stage, st in pipeline.statuses():
                state, reason = st.state, st.reason
                if holder is not None and reason.startswith("interrupted"):
                    state, reason = "running", f"by {describe_holder(holder)}"
                print(f"  {stage.name:<20} {state:<8} {reason}")
            return 0
        if args.show:
            print(show(run_dir, args.show))
            return 0
        if args.dry_run:
            print(f"run folder: {run_dir}")
            for name, action, reason in pipeline.plan(selected, args.force):
                print(f"  {name:<20} {action:<8} {reason}")
            return 0
        with run_folder_lock(run_dir):
            if main_rank:
                try:
                    run_dir.mkdir(parents=True, exist_ok=True)
                    cfg.dump(str(run_dir / "config.py"))
                except OSError as error:
                    raise StorageError(storage_fault(error, run_dir) or str(error)) from None
            log.info("run folder %s, config %s", run_dir, args.config)
            summary = pipeline.run(selected, force=args.force)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped by Ctrl-C: every finished item is kept; run the same command again to resume.",
              file=sys.stderr)
        return 130
    if main_rank:
        log.info("summary of %s:\n%s", run_dir, summary_table(summary, pipeline))
        run = RunFolder(run_dir)
        if run.has(Report):
            log.info("report: %s", run.get(Report).page.resolve().as_uri())
    return 0

if __name__ == "__main__":
    sys.exit(main())
