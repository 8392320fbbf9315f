"""Every per-image stage under torchrun (2 CPU processes, gloo) writes the files a
one-process run writes, and its manifest says how the images were shared out."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.runner import Pipeline
from stages import STAGES
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


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    run = tmp_path_factory.mktemp("upstream")
    Pipeline(STAGES, load_config(TINY_CONFIG), run).run(["prepare", "train_localizer"])
    return run


def test_maps_seeds_and_crf_sharded_over_two_processes_match_one(upstream, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for run, processes in ((one, 1), (two, 2)):
        link(upstream, run, ["prepare", "train_localizer"])
        run_cli(run, "export_maps,evaluate_maps,refine_masks", processes=processes)
    assert_same_outputs(one, two, "export_maps", ["maps"], 12)
    assert_same_outputs(one, two, "evaluate_maps", [], 12)
    assert_same_outputs(one, two, "refine_masks", ["pseudo_masks/SegmentationClass"], 12)
    card = lambda run: json.loads((run / "refine_masks/pseudo_masks/dataset_card.json").read_text())  # noqa: E731
    strip = lambda c: {k: v for k, v in c.items() if k != "from_stages"}  # noqa: E731  (upstream run ids)
    assert strip(card(one)) == strip(card(two))

    # the segmenter's predictions, with the test-time CRF and PNG writes in a worker process
    run_cli(one, "train_segmenter,evaluate_segmenter", "evaluate_segmenter.crf.enabled=True")
    three = tmp_path / "three"
    link(one, three, ["prepare", "train_localizer", "export_maps", "evaluate_maps", "refine_masks",
                      "train_segmenter"])
    run_cli(three, "evaluate_segmenter", "evaluate_segmenter.crf.enabled=True", "evaluate_segmenter.workers=1",
            processes=2)
    assert_same_outputs(one, three, "evaluate_segmenter", ["predictions", "predictions_without_crf"], 4)
