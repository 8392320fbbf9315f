"""Dense-CRF refinement, the pseudo-mask data set, and its evaluation."""

import hashlib
import json

import numpy as np
import pytest
from scipy import ndimage

from pipeline.config import load_config
from pipeline.crf import CRFParams, dense_crf
from pipeline.datasets.masks import read_mask
from pipeline.evaluation import MaskScore
from pipeline.pseudo_masks import ConfidentSplit, PseudoMaskRecipe, pseudo_mask
from pipeline.runner import Pipeline
from stages import STAGES
from pipeline.artifacts import CARD, PSEUDO_MASKS_DIR
from tests.conftest import TINY_CONFIG, TINY_TRAIN


def step_image(edge=40, h=48, w=80):
    image = np.full((h, w, 3), 40, dtype=np.uint8)
    image[:, edge:] = 210
    return image


def test_crf_moves_a_blurred_boundary_toward_the_image_edge():
    image = step_image(edge=40)
    x = np.arange(80, dtype=np.float32)
    fg = np.broadcast_to(1 / (1 + np.exp(-(x - 30) / 6)), (48, 80))  # blurred, centred 10 px early
    scores = np.stack([1 - fg, fg])
    before = int((scores.argmax(0)[24] == 1).argmax())
    after = int((dense_crf(image, scores, CRFParams()))[24].argmax())
    assert abs(before - 40) >= 9
    assert abs(after - 40) <= 2, after


def test_restricting_labels_to_the_image_classes_matches_the_full_label_set():
    rng = np.random.default_rng(0)
    image = step_image()
    image = np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)
    present = ndimage.gaussian_filter(rng.random((3, 48, 80)), 4).astype(np.float32)
    full = np.zeros((21, 48, 80), dtype=np.float32)
    labels = np.array([0, 7, 15])
    full[labels] = present
    restricted = labels[dense_crf(image, present, CRFParams())]
    everything = dense_crf(image, full, CRFParams())
    # Absent classes get probability 1e-5 (pydensecrf's clip), not 0: close, not identical.
    assert (restricted == everything).mean() > 0.99


def test_confident_split_marks_disagreement_as_ignored():
    image = np.full((48, 80, 3), 128, dtype=np.uint8)  # no edge for the CRF to snap to
    x = np.arange(80, dtype=np.float32)
    maps = np.broadcast_to(np.clip((x - 20) / 40, 0, 1), (48, 80))[None].astype(np.float32)
    crf = CRFParams(unary="labels", bilateral=(5, 5, 3))  # local smoothing only
    recipe = PseudoMaskRecipe("fixed", 0.3, 4.0, crf, ConfidentSplit(True, fg_threshold=0.8, bg_threshold=0.05))
    mask = pseudo_mask(image, maps, np.array([3]), recipe)
    assert set(np.unique(mask)) == {0, 3, 255}
    row = mask[24]  # background left, uncertain between the two thresholds' edges, class right
    assert row[0] == 0 and row[-1] == 3 and (row[30:45] == 255).all()


def test_the_confident_split_combines_its_two_passes_as_irn_does():
    """IRN's cam_to_ir_label (and BAS-Extension's): the high threshold's class wins where it
    has one, even against another class of the low threshold's pass; background needs both."""
    from pipeline.pseudo_masks import confident_labels

    fg = np.array([0, 3, 3, 0, 0])
    bg = np.array([0, 0, 2, 2, 3])
    assert confident_labels(fg, bg).tolist() == [0, 3, 3, 255, 255]


def test_mask_score_against_hand_counts():
    gt = np.array([[0, 0, 1, 1], [0, 2, 2, 255]])
    pred = np.array([[0, 255, 1, 0], [0, 2, 1, 1]])
    score = MaskScore(4)
    score.add(pred, gt)
    # labelled pixels 7, one of them ignored by the prediction
    assert score.labelled_pixels == 7 and score.ignored_pixels == 1
    assert score.conf.tolist() == [[2, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    s = score.summary(["bg", "a", "b", "absent"])
    assert s["per_class_iou"]["absent"] is None  # in neither GT nor prediction: left out
    assert s["per_class_iou"]["bg"] == pytest.approx(2 / 3)
    assert s["per_class_iou"]["a"] == pytest.approx(1 / 3)
    assert s["per_class_iou"]["b"] == pytest.approx(1 / 2)
    assert s["miou"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3)
    assert s["precision"]["a"] == pytest.approx(1 / 2) and s["recall"]["a"] == pytest.approx(1 / 2)
    assert s["ignored_share"] == pytest.approx(1 / 7)


@pytest.fixture(scope="module")
def maps_run(tmp_path_factory):
    """A tiny run up to evaluate_maps, shared by the refine tests."""
    run_dir = tmp_path_factory.mktemp("maps_run")
    Pipeline(STAGES, load_config(TINY_CONFIG), run_dir).run(["prepare", "train_localizer", "export_maps",
                                                            "evaluate_maps"])
    return run_dir


def refine(maps_run, run_dir, **overrides):
    for stage in ("prepare", "train_localizer", "export_maps", "evaluate_maps"):
        if not (run_dir / stage).exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / stage).symlink_to(maps_run / stage)
    cfg = load_config(TINY_CONFIG, {f"refine_masks.{k}": v for k, v in overrides.items()})
    Pipeline(STAGES, cfg, run_dir).run(["refine_masks"])
    return run_dir / "refine_masks"


def digests(stage_dir):
    folder = stage_dir / PSEUDO_MASKS_DIR / "SegmentationClass"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.png"))}


def test_pseudo_mask_data_set_is_complete_and_scored(maps_run, tmp_path):
    out = refine(maps_run, tmp_path, n_jobs=1)
    manifest = json.loads((out / "manifest.json").read_text())
    card = json.loads((out / PSEUDO_MASKS_DIR / CARD).read_text())
    ids = (out / PSEUDO_MASKS_DIR / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    assert len(ids) == TINY_TRAIN == card["counts"]["images"] == manifest["artifacts"]["pseudo_masks"]
    assert card["classes"][0] == "background" and sum(card["class_pixel_share"].values()) + card[
        "ignore_fraction"] == pytest.approx(1.0)
    assert set(card["from_stages"]) == {"prepare", "export_maps", "evaluate_maps"}
    labels = json.loads((maps_run / "prepare" / "labels.json").read_text())
    for image_id in ids:
        mask = read_mask(out / PSEUDO_MASKS_DIR / "SegmentationClass" / f"{image_id}.png")
        assert set(np.unique(mask).tolist()) <= {0, 255, *labels[image_id]}
    # the mIoU recounted from the written masks and the GT, pixels either ignores left out
    from pipeline.datasets.prepared import PreparedDataset

    dataset = PreparedDataset.load(maps_run / "prepare")
    k = len(dataset.classes)
    conf = np.zeros((k, k), dtype=np.int64)
    for image_id in ids:
        gt = dataset.load_mask(image_id)
        mask = read_mask(out / PSEUDO_MASKS_DIR / "SegmentationClass" / f"{image_id}.png")
        both = (gt != 255) & (mask != 255)
        conf += np.bincount(k * gt[both].astype(np.int64) + mask[both], minlength=k * k).reshape(k, k)
    union = conf.sum(0) + conf.sum(1) - np.diag(conf)
    m = manifest["metrics"]
    recounted = np.mean(np.diag(conf)[union > 0] / union[union > 0])
    seeds = json.loads((maps_run / "evaluate_maps" / "manifest.json").read_text())["metrics"]["seed_miou"]
    assert m["miou"] == pytest.approx(recounted)
    assert m["seed_miou"] == seeds and m["gain_over_seeds"] == pytest.approx(recounted - seeds)
    assert manifest["info"]["background_threshold"] == json.loads(
        (maps_run / "evaluate_maps" / "manifest.json").read_text())["metrics"]["threshold"]


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_parallel_output_equals_serial(maps_run, tmp_path, backend):
    serial = refine(maps_run, tmp_path / "serial", n_jobs=1)
    parallel = refine(maps_run, tmp_path / backend, n_jobs=2, backend=backend)
    assert digests(serial) == digests(parallel) and len(digests(serial)) == TINY_TRAIN


def test_dask_backend_on_a_local_cluster(maps_run, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.Client(distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False)):
        dask_out = refine(maps_run, tmp_path / "dask", backend="dask", n_jobs=2)
    serial = refine(maps_run, tmp_path / "serial", n_jobs=1)
    assert digests(dask_out) == digests(serial)


def test_killed_run_resumes(maps_run, tmp_path, monkeypatch):
    import pipeline.pseudo_masks as refine_module  # where the workers refine

    clean = refine(maps_run, tmp_path / "clean", n_jobs=1)
    real, calls = refine_module.pseudo_mask, []

    def crash_on_fifth(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("simulated crash")
        return real(*args)

    monkeypatch.setattr(refine_module, "pseudo_mask", crash_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        refine(maps_run, tmp_path / "crashed", n_jobs=1, backend="threading")
    assert not (tmp_path / "crashed" / "refine_masks" / "manifest.json").exists()
    monkeypatch.setattr(refine_module, "pseudo_mask", real)
    resumed = refine(maps_run, tmp_path / "crashed", n_jobs=1)
    assert json.loads((resumed / "manifest.json").read_text())["artifacts"]["reused"] == 4
    assert digests(resumed) == digests(clean)


def test_failed_images_are_listed_and_fail_the_stage_unless_allowed(maps_run, tmp_path):
    from pipeline.errors import DataError

    run_dir = tmp_path / "broken"
    run_dir.mkdir()
    for stage in ("train_localizer", "evaluate_maps"):
        (run_dir / stage).symlink_to(maps_run / stage)
    import shutil

    for stage in ("prepare", "export_maps"):  # real copies: we break files in them
        shutil.copytree(maps_run / stage, run_dir / stage, symlinks=True)
    ids = (maps_run / "prepare" / "lists" / "train.txt").read_text().split()
    (run_dir / "prepare" / "VOC" / "JPEGImages" / f"{ids[0]}.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    maps_file = run_dir / "export_maps" / "maps" / f"{ids[1]}.npz"
    with np.load(maps_file) as saved:
        np.savez_compressed(maps_file, maps=saved["maps"][:, :-3], classes=saved["classes"])
    # the copied prepare index points into the copy (relative paths)
    with pytest.raises(DataError, match=r"2 image\(s\) failed.*cannot read image.*differ in size"):
        refine(maps_run, run_dir, n_jobs=1)
    out = refine(maps_run, run_dir, n_jobs=1, allow_failures=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["artifacts"]["failed"] == 2 and set(manifest["info"]["failed"]) == {ids[0], ids[1]}
    assert manifest["artifacts"]["pseudo_masks"] == 10


def test_crf_kernel_widths_follow_the_image_size_when_asked():
    """A 40-px image with VOC-sized kernels (sxy 80) sees every pixel as a neighbour;
    scaled to its size (reference_size=500) the bilateral reach is 80 * 40 / 500 = 6.4 px."""
    rng = np.random.default_rng(0)
    image = np.full((40, 40, 3), 120, np.uint8)
    scores = np.stack([np.full((40, 40), 0.5), np.zeros((40, 40))]).astype(np.float32)
    scores[1, :, :8] = 1.0  # a confident strip on the left
    scores[1, :, 8:] = 0.45 + 0.01 * rng.random((40, 32))  # barely background elsewhere
    unscaled = dense_crf(image, scores, CRFParams(bilateral=(80, 13, 10)))
    scaled = dense_crf(image, scores, CRFParams(bilateral=(80, 13, 10), reference_size=500))
    assert (scaled[:, 30:] == 0).all()  # far from the strip: the strip's reach ends
    assert (unscaled[:, 30:] == 1).mean() > (scaled[:, 30:] == 1).mean()


def test_crf_worker_modules_import_no_torch():
    """refine_masks' and evaluate_segmenter's worker processes import numpy, PIL and
    pydensecrf; torch would cost each of them seconds at start."""
    import subprocess
    import sys

    code = ("import sys, pipeline.pseudo_masks, pipeline.predictions; "
            "print(sorted({'torch', 'torchvision'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-2000:]
