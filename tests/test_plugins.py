"""Plug-in contracts: every registered localizer and data set, every shipped config, and a
user's own localizer and data set loaded through `custom_imports`, on CPU."""

import json
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
from tests.conftest import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]
LOCALIZER_STAGES = ["prepare", "train_localizer", "check_premise", "export_maps"]


def manifest(run_dir, stage):
    return json.loads((run_dir / stage / "manifest.json").read_text())


@pytest.mark.parametrize("kind", sorted(LOCALIZERS.module_dict))
def test_every_registered_localizer_trains_checks_the_premise_and_exports(kind, tmp_path):
    cfg = load_config(TINY_CONFIG, {"localizer.type": kind})
    Pipeline(STAGES, cfg, tmp_path).run(LOCALIZER_STAGES)
    assert manifest(tmp_path, "check_premise")["info"]["checked"]
    assert manifest(tmp_path, "export_maps")["artifacts"]["maps"] == 12


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
def test_every_registered_data_set_prepares_a_tiny_tree(kind, tmp_path):
    from tests import fake_trees as ft

    trees = {"voc12": lambda: dict(data_root=str(ft.make_voc(tmp_path / "data"))),
             "coco14": lambda: dict(data_root=str(ft.make_coco(tmp_path / "coco"))),
             "coco": lambda: dict(data_root=str(ft.make_coco(tmp_path / "coco", year=2017)), classes="voc20"),
             "folder": lambda: dict(data_root=str(ft.make_folder(tmp_path / "own"))),
             "synthetic": lambda: dict(num_train=4, num_val=2, image_size=(48, 56))}
    cfg = load_config(TINY_CONFIG)
    section = {"type": kind, **trees[kind]()}
    if kind != "synthetic":
        section.update(n_jobs=1, on_bad_item="skip")
    cfg.dataset = section if kind != "synthetic" else {**cfg.dataset, **section}
    Pipeline(STAGES, cfg, tmp_path / "run").run(["prepare"])
    assert manifest(tmp_path / "run", "prepare")["fingerprint"]


@pytest.mark.parametrize("config", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("*.py")))
def test_every_shipped_config_loads_and_plans(config):
    result = subprocess.run([sys.executable, "run_pipeline.py", "--config", config, "--dry-run",
                             "--work-dir", "/nonexistent/plan-only"], cwd=ROOT, capture_output=True, text=True)
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


def test_a_localizer_and_a_data_set_from_outside_the_project_run_the_whole_pipeline(tmp_path):
    (tmp_path / "my_plugins.py").write_text(PLUGIN_MODULE)
    (tmp_path / "my_config.py").write_text(
        f"_base_ = ['{ROOT / TINY_CONFIG}']\n"
        "custom_imports = dict(imports=['my_plugins'], allow_failed_imports=False)\n"
        "localizer = dict(type='cam_halved')\n"
        "dataset = dict(type='synthetic_flipped')\n")
    result = subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), "--config", "my_config.py",
                             "--work-dir", "run", "--stage", "all"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
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
