#!/usr/bin/env python
"""Run the pseudo-mask pipeline, or the stages of it that are missing or stale.

    python run_pipeline.py                                  # all stages, default config
    python run_pipeline.py --config configs/x.py --stage prepare --force
    python run_pipeline.py --status                         # done / stale / missing, and why
    python run_pipeline.py --cfg-options dataset.num_train=100 --dry-run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmengine.config import DictAction

from pipeline import distributed
from pipeline.config import load_config
from pipeline.errors import UserError
from pipeline.log import setup_logging
from pipeline.runner import Pipeline, read_manifest
from stages import STAGES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/default.py", help="pipeline config (an mmengine Python config)")
    parser.add_argument("--stage", default="all",
                        help=f"'all' or a comma-separated list of: {', '.join(s.name for s in STAGES)}")
    parser.add_argument("--force", action="store_true", help="re-run the selected stages even when done")
    parser.add_argument("--work-dir", help="the run folder (default: <work_dir>/<run_name> from the config)")
    parser.add_argument("--status", action="store_true", help="print each stage's state and why, then exit")
    parser.add_argument("--dry-run", action="store_true", help="print what the command would run, then exit")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override config keys, e.g. dataset.num_train=100 (keys must exist)")
    return parser.parse_args(argv)


def run_dir_for(cfg, config_path: str, work_dir: str | None) -> Path:
    if work_dir:
        return Path(work_dir)
    return Path(cfg.get("work_dir", "outputs")) / (cfg.get("run_name") or Path(config_path).stem)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options)
        run_dir = run_dir_for(cfg, args.config, args.work_dir)
        read_only = args.status or args.dry_run
        if not read_only:
            distributed.init_from_env()  # under torchrun: one process per device
        main_rank = distributed.is_main()
        log = setup_logging(None if read_only or not main_rank else run_dir,
                            cfg.get("log_level", "INFO") if main_rank else "WARNING")
        pipeline = Pipeline(STAGES, cfg, run_dir)
        selected = pipeline.select(args.stage)
        if args.status:
            print(f"run folder: {run_dir}")
            for stage in STAGES:
                st = pipeline.status(stage.name)
                print(f"  {stage.name:<20} {st.state:<8} {st.reason}")
            return 0
        if args.dry_run:
            print(f"run folder: {run_dir}")
            for name, action, reason in pipeline.plan(selected, args.force):
                print(f"  {name:<20} {action:<8} {reason}")
            return 0
        if main_rank:
            cfg.dump(str(run_dir / "config.py"))
        log.info("run folder %s, config %s", run_dir, args.config)
        summary = pipeline.run(selected, force=args.force)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if main_rank:
        log.info("summary (%s):", run_dir)
        for name, outcome, seconds in summary:
            metrics = (read_manifest(run_dir / name) or {}).get("metrics", {})
            scores = ", ".join(f"{k} {100 * v:.1f}%" for k, v in metrics.items()
                               if k.endswith("miou") and isinstance(v, float))
            log.info("  %-20s %-16s %8.1f s  %s", name, outcome, seconds, scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
