"""Every per-image stage under torchrun (2 CPU processes, gloo) writes the files a
one-process run writes, and its manifest says how the images were shared out."""

import json

import pytest

from pipeline.config import load_config
from pipeline.runner import Pipeline
from stages import STAGES
from tests.conftest import TINY_CONFIG, TINY_TRAIN
from tests.torchrun_runs import assert_same_outputs, link, manifest, run_cli

pytestmark = pytest.mark.heavy  # torchrun subprocess runs


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
    assert_same_outputs(one, two, "export_maps", ["maps"], TINY_TRAIN)
    assert_same_outputs(one, two, "evaluate_maps", [], TINY_TRAIN)
    assert_same_outputs(one, two, "refine_masks", ["pseudo_masks/SegmentationClass"], TINY_TRAIN)
    card = lambda run: json.loads((run / "refine_masks/pseudo_masks/dataset_card.json").read_text())  # noqa: E731
    strip = lambda c: {k: v for k, v in c.items() if k not in ("from_stages", "made_by")}  # noqa: E731  (run ids, folder)
    assert strip(card(one)) == strip(card(two))

    # the segmenter's predictions, with the test-time CRF and PNG writes in a worker process
    run_cli(one, "train_segmenter,evaluate_segmenter", "evaluate_segmenter.crf.enabled=True")
    three = tmp_path / "three"
    link(one, three, ["prepare", "train_localizer", "export_maps", "evaluate_maps", "refine_masks",
                      "train_segmenter"])
    run_cli(three, "evaluate_segmenter", "evaluate_segmenter.crf.enabled=True", "evaluate_segmenter.workers=1",
            processes=2)
    assert_same_outputs(one, three, "evaluate_segmenter", ["predictions", "predictions_without_crf"], 4)
