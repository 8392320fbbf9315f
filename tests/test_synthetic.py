import hashlib

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.datasets import synthetic
from pipeline.datasets.masks import IGNORE_INDEX, read_mask
from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import ConfigError
from pipeline.runner import Pipeline
from stages import STAGES

SPEC = synthetic.SyntheticSpec(num_train=8, num_val=4)


def test_render_is_deterministic_and_seed_dependent():
    a_img, a_mask, a_cls = synthetic.render_sample(SPEC, 3)
    b_img, b_mask, b_cls = synthetic.render_sample(SPEC, 3)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask) and a_cls == b_cls
    c_img, _, _ = synthetic.render_sample(synthetic.SyntheticSpec(seed=1), 3)
    assert a_img.shape != c_img.shape or not np.array_equal(a_img, c_img)


@pytest.mark.parametrize("index", range(12))
def test_mask_agrees_with_labels_and_spec(index):
    image, mask, classes = synthetic.render_sample(SPEC, index)
    h, w = mask.shape
    assert image.shape == (h, w, 3) and image.dtype == np.uint8
    assert SPEC.image_size[0] <= h <= SPEC.image_size[1] and SPEC.image_size[0] <= w <= SPEC.image_size[1]
    in_mask = sorted(set(np.unique(mask).tolist()) - {0, IGNORE_INDEX})
    assert in_mask == classes
    assert SPEC.classes_per_image[0] <= len(classes) <= SPEC.classes_per_image[1]
    # Every object boundary carries a void band; void is a thin band, not a region.
    assert (mask == IGNORE_INDEX).any()
    assert (mask == IGNORE_INDEX).mean() < 0.2
    assert (mask == 0).any()


def test_class_looks_are_distinct_and_fixed_by_seed():
    looks = synthetic.class_looks(synthetic.SyntheticSpec(num_classes=5))
    assert len({look.part_shape for look in looks}) == 5
    assert synthetic.class_names(SPEC) == ["background", "disc", "square", "triangle", "cross", "star"]
    many = synthetic.class_names(synthetic.SyntheticSpec(num_classes=10, classes_per_image=(1, 2)))
    assert len(set(many)) == 11


def test_part_is_small_and_decisive():
    """The part's colours occur in its own class's objects and nowhere else."""
    spec = synthetic.SyntheticSpec(num_train=30, num_val=0)
    looks = synthetic.class_looks(spec)
    for index in range(30):
        image, mask, classes = synthetic.render_sample(spec, index)
        for c, look in enumerate(looks, start=1):
            near = np.abs(image.astype(int) - look.part_colors[0]).max(-1) < 30
            share = near.mean()
            if c in classes:
                assert near[mask == c].any(), f"image {index}: class {c} shows no part"
            # Other classes' bodies and the background may come close to a part colour
            # by chance, but never cover much of the image with it.
            assert share < 0.1


@pytest.mark.parametrize("bad, match", [
    ({"classes_per_image": (1, 9)}, "classes_per_image"),
    ({"objects_per_image": (1, 1), "classes_per_image": (1, 2)}, "objects_per_image"),
    ({"num_classes": 0, "classes_per_image": (1, 1)}, "num_classes"),
])
def test_bad_spec_is_a_config_error(bad, match):
    with pytest.raises(ConfigError, match=match):
        synthetic.SyntheticSpec(**bad)


def run_prepare(cfg, run_dir):
    p = Pipeline(STAGES, cfg, run_dir)
    p.run(["prepare"])
    return PreparedDataset.load(run_dir / "prepare")


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_prepare_writes_a_consistent_voc_tree(tiny_cfg, tmp_path):
    ds = run_prepare(tiny_cfg, tmp_path)
    assert ds.classes[0] == "background" and ds.num_classes == 5
    assert len(ds.split("train")) == 12 and len(ds.split("val")) == 4
    assert not set(ds.split("train")) & set(ds.split("val"))
    voc = tmp_path / "prepare" / "VOC"
    assert (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split() == ds.split("train")
    for image_id in ds.split("train") + ds.split("val"):
        mask = ds.load_mask(image_id)
        assert mask.shape == ds.load_image(image_id).shape[:2]
        assert sorted(set(np.unique(mask).tolist()) - {0, 255}) == ds.labels[image_id]
    assert read_mask(ds.mask_path(ds.split("val")[0])).dtype == np.uint8


def test_prepare_resumes_after_a_crash_with_identical_output(tiny_cfg, tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    run_prepare(tiny_cfg, clean)

    real_render, calls = synthetic.render_sample, []

    def crash_on_sixth(spec, index):
        calls.append(index)
        if len(calls) == 6:
            raise KeyboardInterrupt("simulated crash")
        return real_render(spec, index)

    crashed = tmp_path / "crashed"
    monkeypatch.setattr(synthetic, "render_sample", crash_on_sixth)
    with pytest.raises(KeyboardInterrupt):
        run_prepare(tiny_cfg, crashed)
    assert not (crashed / "prepare" / "manifest.json").exists()
    monkeypatch.setattr(synthetic, "render_sample", real_render)
    run_prepare(tiny_cfg, crashed)
    assert Pipeline(STAGES, tiny_cfg, crashed).status("prepare").manifest["artifacts"]["reused"] == 5
    strip = lambda d: {k: v for k, v in d.items() if k != "manifest.json"}  # noqa: E731
    assert strip(digest(crashed / "prepare")) == strip(digest(clean / "prepare"))


def test_unknown_dataset_key_or_type_is_a_config_error(tmp_path):
    cfg = load_config("configs/default.py")
    cfg.dataset["num_trian"] = 3
    with pytest.raises(ConfigError, match="unknown key 'dataset.num_trian'. Did you mean 'num_train'"):
        run_prepare(cfg, tmp_path)
    cfg = load_config("configs/default.py", {"dataset.type": "vco12"})
    with pytest.raises(ConfigError, match="dataset.type = 'vco12' is not a registered data set; choose one of: coco, "):
        run_prepare(cfg, tmp_path / "b")
