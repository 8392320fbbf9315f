"""Plug-in contracts: every registered localizer and data set, every shipped config, and a
user's own localizer and data set loaded through `custom_imports`, on CPU."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.config import load_config
from pipeline.datasets import DATASETS
from pipeline.models import LOCALIZERS, build_localizer
from pipeline.runner import Pipeline
from stages import STAGES
from tests.conftest import TINY_CONFIG, TINY_TRAIN

ROOT = Path(__file__).resolve().parents[1]
LOCALIZER_STAGES = ["prepare", "train_localizer", "check_premise", "export_maps"]


def manifest(run_dir, stage):
    return json.loads((run_dir / stage / "manifest.json").read_text())


@pytest.mark.parametrize("kind", sorted(LOCALIZERS.module_dict))
def test_every_registered_localizer_trains_checks_the_premise_and_exports(kind, tmp_path):
    cfg = load_config(TINY_CONFIG, {"localizer.type": kind})
    Pipeline(STAGES, cfg, tmp_path).run(LOCALIZER_STAGES)
    assert manifest(tmp_path, "check_premise")["info"]["checked"]
    assert manifest(tmp_path, "export_maps")["artifacts"]["maps"] == TINY_TRAIN


@pytest.mark.parametrize("kind", sorted(LOCALIZERS.module_dict))
def test_every_localizer_keeps_its_contract_and_trains_on_negatives(kind):
    backbone = dict(type="timm", name="tf_efficientnet_lite0", output_stride=16, weights=None)
    options = {"bas": {"background_logit": True}}.get(kind, {})
    model, weights = build_localizer(dict(type=kind, backbone=backbone, **{kind: options}), 3)
    assert set(model.classification_terms) & set(weights) and model.heads()
    images = torch.randn(4, 3, 64, 64)
    labels = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 0], [0, 0, 0]])  # two negatives
    terms = model.train()(images, labels)
    loss = sum(w * terms[name] for name, w in weights.items())
    assert torch.isfinite(loss)
    loss.backward()
    model.eval()
    with torch.no_grad():
        assert model(images).shape[:2] == (4, 3) and model.class_activation(images).shape[:2] == (4, 3)
    all_negative = model.train()(images, torch.zeros(4, 3, dtype=torch.long))
    assert all(torch.isfinite(v) for v in all_negative.values())


@pytest.mark.parametrize("kind", sorted(DATASETS.module_dict))
def test_every_registered_data_set_prepares_its_own_example(kind, tmp_path):
    """Each data set writes a tiny tree of its format (`example`): adding one takes no test edit."""
    cfg = load_config(TINY_CONFIG)
    cfg.dataset = DATASETS.get(kind).example(tmp_path / "data", kind)
    Pipeline(STAGES, cfg, tmp_path / "run").run(["prepare"])
    from pipeline.datasets.prepared import PreparedDataset

    prepared = PreparedDataset.load(tmp_path / "run" / "prepare")
    assert prepared.splits and all(prepared.split(s) for s in prepared.splits)
    assert all(i in prepared.labels for s in prepared.splits for i in prepared.split(s))
    assert not manifest(tmp_path / "run", "prepare")["artifacts"].get("skipped"), "the example prepares cleanly"


@pytest.mark.heavy
@pytest.mark.parametrize("config", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("*.py")))
def test_every_shipped_config_loads_and_plans(config, tmp_path):
    """A config that reads a data set on disk plans on a tiny tree of that format (its data
    set's `example`); without one, --dry-run stops at the missing data root in one line."""
    kind = load_config(config).dataset.type
    options = []
    if kind != "synthetic":
        root = DATASETS.get(kind).example(tmp_path / "data", kind)["data_root"]
        options = ["--cfg-options", f"dataset.data_root={root}"]
        missing = subprocess.run([sys.executable, "run_pipeline.py", "--config", config, "--dry-run", "--work-dir",
                                  str(tmp_path / "run"), "--cfg-options", f"dataset.data_root={tmp_path / 'none'}"],
                                 cwd=ROOT, capture_output=True, text=True)
        assert missing.returncode == 2 and ("does not exist" in missing.stderr or "no image folder" in missing.stderr)
    result = subprocess.run([sys.executable, "run_pipeline.py", "--config", config, "--dry-run",
                             "--work-dir", str(tmp_path / "run"), *options], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "prepare" in result.stdout and "Traceback" not in result.stderr


PLUGIN_MODULE = '''
from pipeline.datasets import DATASETS
from pipeline.datasets.synthetic import Synthetic
from pipeline.models import LOCALIZERS
from pipeline.models.cam import CAMClassifier


@LOCALIZERS.register_module(name="cam_halved")
class HalvedCAM(CAMClassifier):
    """A user's localizer: the CAM with its maps halved."""

    def forward(self, images, labels=None):
        out = super().forward(images, labels)
        return out if labels is not None else out / 2


@DATASETS.register_module(name="synthetic_flipped")
class FlippedSynthetic(Synthetic):
    """A user's data set: the synthetic images mirrored."""

    def render(self, index):
        image, mask, classes = super().render(index)
        return image[:, ::-1].copy(), mask[:, ::-1].copy(), classes
'''


def run_with_plugin(folder: Path, module: str, source: str, *config_lines: str) -> tuple[Path, str]:
    """Write a user's module and a config that imports it into `folder`, run the whole
    pipeline there as a user would; (the run folder, the log)."""
    (folder / f"{module}.py").write_text(source)
    (folder / "my_config.py").write_text("\n".join([
        f"_base_ = ['{ROOT / TINY_CONFIG}']",
        f"custom_imports = dict(imports=['{module}'], allow_failed_imports=False)", *config_lines]) + "\n")
    result = subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), "--config", "my_config.py",
                             "--work-dir", "run"], cwd=folder, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "run", result.stderr + result.stdout


@pytest.mark.heavy
def test_a_localizer_and_a_data_set_from_outside_the_project_run_the_whole_pipeline(tmp_path):
    run, _ = run_with_plugin(tmp_path, "my_plugins", PLUGIN_MODULE, "localizer = dict(type='cam_halved')",
                             "dataset = dict(type='synthetic_flipped')")
    assert manifest(run, "train_localizer")["info"]["method"] == "cam_halved"
    from pipeline.datasets.prepared import PreparedDataset
    from pipeline.datasets.synthetic import SyntheticSpec, render_sample

    section = {k: v for k, v in load_config(TINY_CONFIG).dataset.items() if k != "type"}
    prepared = PreparedDataset.load(run / "prepare")
    first = prepared.split("train")[0]
    _, mask, classes = render_sample(SyntheticSpec(**section), 0)
    assert (prepared.load_mask(first) == mask[:, ::-1]).all() and prepared.labels[first] == classes  # mirrored
    assert set(manifest(run, "evaluate_segmenter")["metrics"]["per_class_iou"]) == set(prepared.classes)
    assert (run / "report" / "index.html").is_file()


REFINEMENT_MODULE = '''
"""A user's refinement: the seeds themselves, argmax([t, class maps]), as pseudo-masks."""
import numpy as np

from pipeline.artifacts import PseudoMasks
from pipeline.refinement import REFINEMENT_INPUTS, refine_each_image
from pipeline.stage import register_stage


def seeds(image, maps, classes, threshold):
    background = np.full((1, *maps.shape[1:]), threshold, dtype=maps.dtype)
    return np.concatenate([[0], classes])[np.concatenate([background, maps]).argmax(0)]


@register_stage(step=7.5, consumes=REFINEMENT_INPUTS, produces=PseudoMasks, settings={"seed_masks": None},
                headline=("miou", "unrefined seed-mask mIoU"), description="the seeds as pseudo-masks")
def seed_masks(ctx):
    return refine_each_image(ctx, seeds, recipe=ctx.section("seed_masks"))
'''


@pytest.mark.heavy
def test_a_refinement_from_outside_is_one_module_and_one_config(tmp_path):
    """It runs after the CRF, the segmenter trains on its masks, the report's chain shows it;
    its masks are the seeds, so its mIoU is evaluate_maps' seed mIoU."""
    run, log = run_with_plugin(tmp_path, "my_refinement", REFINEMENT_MODULE,
                               "seed_masks = dict(what='the seeds, unrefined')",
                               "train_segmenter = dict(pseudo_masks='seed_masks')")
    order = re.findall(r"\[(\w+)\] running", log)
    assert order.index("seed_masks") == order.index("refine_masks") + 1, order
    assert set(manifest(run, "train_segmenter")["upstream"]) == {"prepare", "seed_masks", "train_localizer"}
    seeds = manifest(run, "evaluate_maps")["metrics"]["seed_miou"]
    assert manifest(run, "seed_masks")["metrics"]["miou"] == pytest.approx(seeds, abs=1e-6)
    card = json.loads((run / "seed_masks" / "pseudo_masks" / "dataset_card.json").read_text())
    assert card["recipe"] == {"what": "the seeds, unrefined"} and card["counts"]["images"] == TINY_TRAIN
    assert "unrefined seed-mask mIoU" in (run / "report" / "index.html").read_text()


def test_help_and_dry_run_list_a_refinement_from_one_outside_file(tmp_path):
    """One file and one config line add a stage: --help lists it with its description, and
    the plan puts it after the CRF, with nothing in the project edited."""
    (tmp_path / "my_refinement.py").write_text(REFINEMENT_MODULE)
    (tmp_path / "my_config.py").write_text(
        f"_base_ = ['{ROOT / TINY_CONFIG}']\n"
        "custom_imports = dict(imports=['my_refinement'], allow_failed_imports=False)\n"
        "seed_masks = dict(what='the seeds, unrefined')\n")
    run = lambda *args: subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), "--config", "my_config.py",  # noqa: E731
                                        *args], cwd=tmp_path, capture_output=True, text=True)
    listed = run("--help")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^\s+seed_masks\s+the seeds as pseudo-masks$", listed.stdout, re.M), listed.stdout
    planned = run("--work-dir", "run", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    order = re.findall(r"^\s+(\w+)\s+(?:run|skip|off)", planned.stdout, re.M)
    assert order.index("seed_masks") == order.index("refine_masks") + 1, planned.stdout
