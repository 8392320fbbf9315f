"""Run the command line under torchrun on the CPU and compare with a one-process run
(shared by the sharding and random-walk tests)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]
PORTS = iter(range(29541, 29600))


def run_cli(work_dir: Path, stages: str, *options: str, processes: int = 1, config: str | Path = TINY_CONFIG,
            force: bool = False) -> None:
    """run_pipeline.py in `processes` torchrun processes on the CPU, one thread each (so that
    both runs compute alike, whatever the machine)."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                 "--master_port", str(next(PORTS))] if processes > 1 else [sys.executable])
    cmd = [*launcher, "run_pipeline.py", "--config", str(config), "--work-dir", str(work_dir), "--stage", stages,
           *(["--force"] if force else []), *(["--cfg-options", *options] if options else [])]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def link(src: Path, dst: Path, stages: list[str]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in stages:
        os.symlink(src / name, dst / name)


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def manifest(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "manifest.json").read_text())


def assert_same_outputs(one: Path, two: Path, stage: str, folders: list[str], items: int) -> None:
    for folder in folders:
        a, b = files(one / stage / folder), files(two / stage / folder)
        assert a and a == b, f"{stage}/{folder} differs between one and two processes"
    single, sharded = manifest(one, stage), manifest(two, stage)
    assert sharded["metrics"] == single["metrics"]
    assert single["info"]["world_size"] == 1 and single["info"]["items_per_rank"] == [items]
    assert sharded["info"]["world_size"] == 2 and sum(sharded["info"]["items_per_rank"]) == items
    assert min(sharded["info"]["items_per_rank"]) > 0
