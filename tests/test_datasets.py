"""prepare on real-format trees (VOC + SBD, COCO, own folder), and on bad input."""

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from pipeline.config import load_config
from pipeline.datasets.masks import voc_palette
from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import ConfigError, DataError
from pipeline.runner import Pipeline
from stages import STAGES
from pipeline.datasets import examples as ft
from tests.conftest import TINY_CONFIG


def prepare(tmp_path, config, **dataset):
    overrides = {f"dataset.{k}": v for k, v in dataset.items()}
    cfg = load_config(config, overrides)
    run = tmp_path / "run"
    Pipeline(STAGES, cfg, run).run(["prepare"], force=True)
    manifest = json.loads((run / "prepare" / "manifest.json").read_text())
    return PreparedDataset.load(run / "prepare"), manifest


def voc(tmp_path, **dataset):
    return prepare(tmp_path, "configs/voc12_bas_r50.py", **{"data_root": str(tmp_path / "data"), "n_jobs": 1, **dataset})


# ---- VOC 2012 + SBD ------------------------------------------------------------------------

def test_voc_with_sbd_gives_lists_labels_and_masks(tmp_path):
    ft.make_voc(tmp_path / "data")
    ds, m = voc(tmp_path)
    assert ds.split("train") == ft.VOC_TRAIN and ds.split("val") == ft.VOC_VAL
    assert ds.split("train_aug") == ft.TRAIN_AUG  # (VOC train + SBD train + SBD val) - VOC val
    assert ds.labels["2007_000002"] == [12, 15] and ds.labels["2008_000007"] == [3]  # dog, person; bird once
    assert ds.classes[0] == "background" and len(ds.classes) == 21
    # VOC's own mask where there is one (void border kept), SBD's converted mask elsewhere
    assert np.array_equal(ds.load_mask("2007_000003"), ft.voc_mask_of("2007_000003"))
    assert np.array_equal(ds.load_mask("2008_000006"), ft.voc_mask_of("2008_000006", sbd=True))
    aug = tmp_path / "data" / "VOCdevkit" / "VOC2012" / "SegmentationClassAug"
    assert sorted(p.stem for p in aug.glob("*.png")) == ["2008_000006", "2008_000007", "2008_000008"]
    assert Image.open(aug / "2008_000006.png").mode == "P"
    assert m["artifacts"]["sbd_masks_converted"] == 3 and m["artifacts"]["train_aug_images"] == 6

    _, again = voc(tmp_path)  # the conversion is cached
    assert again["artifacts"]["sbd_masks_converted"] == 0


def test_voc_without_sbd_uses_voc_train(tmp_path, caplog):
    ft.make_voc(tmp_path / "data", sbd=False)
    ds, _ = voc(tmp_path, sbd_dir=None)
    assert ds.split("train_aug") == ft.VOC_TRAIN
    assert "no SBD" in caplog.text


def test_missing_folders_are_listed_in_one_message(tmp_path):
    root = ft.make_voc(tmp_path / "data")
    shutil.rmtree(root / "VOCdevkit" / "VOC2012" / "Annotations")
    shutil.rmtree(root / "VOCdevkit" / "VOC2012" / "SegmentationClass")
    with pytest.raises(DataError, match=r"incomplete; missing:\n.*Annotations\n.*SegmentationClass"):
        voc(tmp_path)
    with pytest.raises(DataError, match="data root .* does not exist"):
        voc(tmp_path, data_root=str(tmp_path / "nowhere"))
    shutil.rmtree(root / "benchmark_RELEASE" / "dataset" / "cls")
    (root / "VOCdevkit" / "VOC2012" / "Annotations").mkdir()
    (root / "VOCdevkit" / "VOC2012" / "SegmentationClass").mkdir()
    with pytest.raises(DataError, match=r"(?s)SBD: .*missing:\n.*cls.*sbd_dir=None"):
        voc(tmp_path)


def test_bad_images_are_errors_or_counted_skips(tmp_path):
    root = ft.make_voc(tmp_path / "data")
    images = root / "VOCdevkit" / "VOC2012" / "JPEGImages"
    (images / "2007_000002.jpg").unlink()  # listed but absent
    data = (images / "2007_000003.jpg").read_bytes()
    (images / "2007_000003.jpg").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DataError) as err:  # every bad item in one message, by reason
        voc(tmp_path)
    assert re.search(r"2 bad item\(s\).*1 x corrupt image:.*2007_000003.jpg.*1 x missing image:.*2007_000002.jpg"
                     r".*on_bad_item='skip'", str(err.value), re.DOTALL)
    ds, m = voc(tmp_path, on_bad_item="skip")
    assert ds.split("train") == ["2007_000001"]
    assert m["info"]["skipped"] == {"corrupt image": {"count": 1, "examples": ["2007_000003"]},
                                    "missing image": {"count": 1, "examples": ["2007_000002"]}}
    assert m["artifacts"]["skipped"] == 2


def test_grey_and_cmyk_jpegs_are_accepted_as_rgb(tmp_path):
    root = ft.make_voc(tmp_path / "data")
    images = root / "VOCdevkit" / "VOC2012" / "JPEGImages"
    ft.write_jpeg(images / "2007_000001.jpg", 0, mode="L")
    ft.write_jpeg(images / "2007_000002.jpg", 1, mode="CMYK")
    ds, m = voc(tmp_path)
    assert m["artifacts"]["skipped"] == 0
    for image_id in ("2007_000001", "2007_000002"):
        assert ds.load_image(image_id).shape == (ft.H, ft.W, 3)


def test_rgb_masks_are_converted_and_foreign_colours_refused(tmp_path):
    root = ft.make_voc(tmp_path / "data")
    seg = root / "VOCdevkit" / "VOC2012" / "SegmentationClass"
    mask = ft.voc_mask_of("2007_000001")
    Image.fromarray(voc_palette()[mask]).save(seg / "2007_000001.png")  # colour-coded RGB
    rgb = voc_palette()[ft.voc_mask_of("2007_000002")]
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(seg / "2007_000002.png")
    with pytest.raises(DataError, match=r"2007_000002.png: RGB mask holds colours outside the palette"):
        voc(tmp_path)
    ds, m = voc(tmp_path, on_bad_item="skip")
    assert m["artifacts"]["rgb_masks_converted"] == 1
    assert np.array_equal(ds.load_mask("2007_000001"), mask)
    assert m["info"]["skipped"]["bad mask"]["examples"] == ["2007_000002"]


def test_mask_labels_outside_the_classes_and_wrong_sizes(tmp_path):
    root = ft.make_voc(tmp_path / "data")
    seg = root / "VOCdevkit" / "VOC2012" / "SegmentationClass"
    bad = ft.voc_mask_of("2007_000001")
    bad[0, 0] = 30
    Image.fromarray(bad, mode="L").save(seg / "2007_000001.png")
    Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(seg / "2007_000002.png")
    ds, m = voc(tmp_path, on_bad_item="skip")
    assert m["info"]["skipped"]["mask label out of range"]["examples"] == ["2007_000001"]
    assert m["info"]["skipped"]["mask size mismatch"]["examples"] == ["2007_000002"]


def test_annotation_problems(tmp_path):
    root = ft.make_voc(tmp_path / "data")
    ann = root / "VOCdevkit" / "VOC2012" / "Annotations"
    ft.write_xml(ann / "2007_000001.xml", [])  # no objects
    with pytest.raises(DataError, match="2007_000001.xml: annotation has no objects"):
        voc(tmp_path)
    _, m = voc(tmp_path, on_bad_item="skip")
    assert m["info"]["skipped"]["no objects"]["count"] == 1
    ft.write_xml(ann / "2007_000002.xml", ["unicorn"])
    with pytest.raises(DataError, match="2007_000002.xml: unknown class 'unicorn'"):
        voc(tmp_path, on_bad_item="skip")  # a wrong class list is never skipped


def test_empty_list_is_an_error(tmp_path):
    root = ft.make_voc(tmp_path / "data")
    (root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt").write_text("\n")
    with pytest.raises(DataError, match="val.txt lists no images"):
        voc(tmp_path)


# ---- COCO 2014 -----------------------------------------------------------------------------

def coco(tmp_path, **dataset):
    return prepare(tmp_path, "configs/coco14_bas_r50.py", **{"data_root": str(tmp_path / "coco"), "n_jobs": 1, **dataset})


def test_coco_categories_masks_overlap_and_crowd(tmp_path):
    ft.make_coco(tmp_path / "coco")
    ds, m = coco(tmp_path)
    assert ds.classes == ["background", "person", "car", "toothbrush"]  # ids 1, 3, 90 -> 1, 2, 3
    first, crowd_only, fourth = "COCO_train2014_000000000001", "COCO_train2014_000000000002", \
        "COCO_train2014_000000000004"
    # the published 'annotated' list: every image with an annotation, crowd-only ones included
    assert ds.split("train") == [first, crowd_only, fourth] and ds.split("val") == ["COCO_val2014_000000000005"]
    assert ds.labels[first] == [1, 2] and ds.labels[fourth] == [3]
    assert ds.labels[crowd_only] == [2] and m["artifacts"]["crowd_only_images"] == 1  # labelled by its crowd
    assert (ds.load_mask(crowd_only)[:, 30:40] == 255).all() and (ds.load_mask(crowd_only)[:, :30] == 0).all()
    mask = ds.load_mask(first)
    assert mask[12, 12] == 2  # the small car is painted over the big person
    assert mask[3, 5] == 1 and mask[28, 1] == 0
    assert mask[5, 35] == 255 and mask[5, 31] == 1  # crowd is 255 only where no instance is
    assert (ds.load_mask(fourth)[:, 5:15] == 3).all() and (ds.load_mask(fourth)[:, 15:] == 0).all()  # raw RLE
    assert ds.load_image(first).shape == (ft.H, ft.W, 3)
    assert m["artifacts"]["skipped"] == 0


def test_coco_crowd_exclusion_and_the_all_images_list(tmp_path):
    ft.make_coco(tmp_path / "coco")
    ds, _ = coco(tmp_path, crowd="exclude", image_list="all", on_bad_item="skip")
    assert "COCO_train2014_000000000003" in ds.split("train")  # no annotation: kept, background only
    assert ds.labels["COCO_train2014_000000000003"] == []
    assert ds.load_mask("COCO_train2014_000000000001")[5, 35] == 0
    assert (ds.load_mask("COCO_train2014_000000000002")[:, 30:40] == 255).all()  # crowd-only: still not background
    with pytest.raises(ConfigError, match="dataset.crowd"):
        coco(tmp_path, crowd="drop")


def coco17(tmp_path, **dataset):
    return prepare(tmp_path, "configs/real_voc20_bas.py", **{"data_root": str(tmp_path / "coco"), "n_jobs": 1,
                                                             "negatives": "keep", **dataset})


def test_coco_2017_layout_in_voc_classes_with_negatives_kept_or_dropped(tmp_path):
    ft.make_coco(tmp_path / "coco", year=2017)
    ds, m = coco17(tmp_path)
    assert m["info"]["year"] == 2017 and ds.classes[1] == "aeroplane" and len(ds.classes) == 21
    person, car = ds.classes.index("person"), ds.classes.index("car")
    assert ds.labels["000000000001"] == sorted([person, car])
    assert ds.labels["000000000004"] == [] and m["artifacts"]["train_negatives"] == 1  # a toothbrush: not VOC
    assert (ds.load_mask("000000000004") == 0).all()  # other categories are background
    assert ds.load_mask("000000000001")[12, 12] == car and ds.load_mask("000000000001")[3, 5] == person
    assert ds.split("val") == ["000000000005"] and ds.labels["000000000005"] == []
    ds, m = prepare(tmp_path / "drop", "configs/real_voc20_bas.py",
                    **{"data_root": str(tmp_path / "coco"), "n_jobs": 1, "negatives": "drop", "splits": ("train",)})
    assert "000000000004" not in ds.split("train") and m["artifacts"]["train_negatives"] == 1  # counted

    # a mask cache that vanished (kept in a data root that was reset) is an error, not "no GT"
    import shutil

    from pipeline.datasets.prepared import PreparedDataset
    from pipeline.errors import DataError

    shutil.rmtree(ds.mask_dir)
    with pytest.raises(DataError, match="GT mask folder .* is missing"):
        PreparedDataset.load(ds.root)


def test_coco_class_list_and_errors(tmp_path):
    ft.make_coco(tmp_path / "coco", year=2017)
    ds, m = coco17(tmp_path, classes=("person",))
    assert ds.classes == ["background", "person"]
    assert ds.labels["000000000001"] == [1] and ds.labels["000000000004"] == []
    assert (ds.load_mask("000000000001")[12, 12]) == 1  # the car is background: the person shows through
    with pytest.raises(ConfigError, match="'unicorn' not among the categories"):
        coco17(tmp_path / "bad", classes=("unicorn",), data_root=str(tmp_path / "coco"))
    with pytest.raises(ConfigError, match="dataset.negatives"):
        coco17(tmp_path / "bad2", negatives="maybe", data_root=str(tmp_path / "coco"))
    with pytest.raises(DataError, match="voc20' needs COCO's categories"):
        ft.make_coco(tmp_path / "c14")
        prepare(tmp_path / "c14run", "configs/coco14_bas_r50.py",
                **{"data_root": str(tmp_path / "c14"), "n_jobs": 1, "classes": "voc20"})


# ---- a user's own folder ---------------------------------------------------------------------

def tiny_on(tmp_path, dataset: dict):
    """The tiny test config with its data set replaced."""
    from mmengine.config import Config

    cfg = Config.fromfile(TINY_CONFIG)
    cfg.dataset = {"n_jobs": 1, "on_bad_item": "error", **dataset}
    return cfg


def folder(tmp_path, **dataset):
    cfg = tiny_on(tmp_path, {"type": "folder", "data_root": str(tmp_path / "mine"), "image_suffix": ".jpg", **dataset})
    run = tmp_path / "run"
    Pipeline(STAGES, cfg, run).run(["prepare"], force=True)
    return PreparedDataset.load(run / "prepare"), json.loads((run / "prepare" / "manifest.json").read_text())


def test_own_folder_with_names_indices_optional_masks(tmp_path):
    ft.make_folder(tmp_path / "mine")
    ds, m = folder(tmp_path)
    assert ds.classes == ["background", "apple", "banana"] and ds.split("train") == ["p1", "p2", "p3", "p4"]
    assert ds.labels == {"p1": [1], "p2": [1, 2], "p3": [2], "p4": [2]}
    assert ds.load_mask("p1")[10, 10] == 1 and ds.load_mask("p2") is None
    splits = tmp_path / "mine" / "splits"
    splits.mkdir()
    (splits / "train.txt").write_text("p2\np3\np4\n")
    (splits / "val.txt").write_text("p1\n")
    ds, _ = folder(tmp_path)
    assert ds.split("val") == ["p1"] and ds.split("train") == ["p2", "p3", "p4"]


@pytest.mark.parametrize("row, message", [
    ("p5,cherry", "labels.csv:6: unknown class 'cherry'"),
    ("p5,7", "labels.csv:6: label 7 is outside the class range 1..2"),
    ("p1,apple", "labels.csv:6: image 'p1' is listed twice"),
])
def test_own_folder_label_errors_name_the_line(tmp_path, row, message):
    root = ft.make_folder(tmp_path / "mine")
    with (root / "labels.csv").open("a") as f:
        f.write(row + "\n")
    with pytest.raises(DataError, match=message):
        folder(tmp_path)


def test_own_folder_image_without_labels_is_a_counted_skip(tmp_path):
    root = ft.make_folder(tmp_path / "mine")
    with (root / "labels.csv").open("a") as f:
        f.write("p9,\n")
    with pytest.raises(DataError, match="image 'p9' has no label"):
        folder(tmp_path)
    ds, m = folder(tmp_path, on_bad_item="skip")
    assert "p9" not in ds.split("train") and m["artifacts"]["skipped"] == 1


def test_a_photo_without_a_row_in_labels_csv_is_counted_or_refused(tmp_path):
    """p1.jpg copied to extra.jpg, which labels.csv does not list: left out and counted
    by default, refused with unlabelled='error' (at prepare and at --dry-run)."""
    import shutil

    root = ft.make_folder(tmp_path / "mine")
    shutil.copy(root / "images" / "p1.jpg", root / "images" / "extra.jpg")
    ds, m = folder(tmp_path)
    assert "extra" not in ds.split("train") and m["artifacts"]["images_without_labels"] == 1
    assert m["info"]["images_without_labels"] == ["extra"]
    with pytest.raises(DataError, match=r"1 of 5 photos have no row in .*labels.csv \(e.g. extra\)"):
        folder(tmp_path, unlabelled="error")
    from pipeline.datasets import build_data_source

    with pytest.raises(DataError, match="have no row"):
        build_data_source(dict(type="folder", data_root=str(root), unlabelled="error")).check()


def test_own_folder_without_classes_txt_takes_the_label_names_and_warns_of_an_absent_class(tmp_path, caplog):
    root = ft.make_folder(tmp_path / "mine")
    (root / "classes.txt").unlink()
    (root / "labels.csv").write_text("image_id,labels\np1,pear\np2,pear apple\np3,apple\np4,apple\n")
    ds, _ = folder(tmp_path)
    assert ds.classes == ["background", "apple", "pear"] and ds.labels["p2"] == [1, 2]
    (root / "classes.txt").write_text("apple\npear\nplum\n")
    with caplog.at_level("WARNING"):
        _, m = folder(tmp_path)
    assert "1 class(es) have no image in split 'train': plum" in caplog.text
    assert m["info"]["classes_without_images"] == {"train": ["plum"]}


def test_images_of_another_suffix_are_named_with_the_setting_to_change(tmp_path):
    root = ft.make_folder(tmp_path / "mine")
    for jpg in (root / "images").glob("*.jpg"):
        Image.open(jpg).save(jpg.with_suffix(".png"))
        jpg.unlink()
    with pytest.raises(DataError, match=r"found 4 \.png file\(s\) .*set dataset.image_suffix='\.png'"):
        folder(tmp_path)


def test_a_config_without_data_root_says_how_to_set_it(tmp_path):
    with pytest.raises(ConfigError, match="dataset.data_root is not set: .*--cfg-options dataset.data_root="):
        folder(tmp_path, data_root=None)
    cfg = load_config("configs/real_voc20_bas.py")
    with pytest.raises(ConfigError, match="dataset.data_root is not set"):
        Pipeline(STAGES, cfg, tmp_path / "coco_run").run(["prepare"])


def test_a_coco_json_without_categories_is_a_clear_error(tmp_path):
    root = ft.make_coco(tmp_path / "coco", year=2017)
    for path in (root / "annotations").glob("*.json"):
        content = json.loads(path.read_text())
        del content["categories"]
        path.write_text(json.dumps(content))
    with pytest.raises(DataError, match="not a COCO instances file: no list under 'categories'"):
        prepare(tmp_path, "configs/real_voc20_bas.py", data_root=str(root), n_jobs=1)


def test_the_folder_config_runs_the_whole_pipeline_on_a_folder_of_photos(tmp_path):
    """configs/folder.py as shipped, with only data_root set (and the schedule shrunk)."""
    import run_pipeline

    root = ft.make_folder(tmp_path / "mine")
    (root / "classes.txt").unlink()
    (root / "labels.csv").write_text("image_id,labels\np1,apple\np2,apple banana\np3,banana\np4,banana\n")
    assert run_pipeline.main(["--config", "configs/folder.py", "--work-dir", str(tmp_path / "run"), "--cfg-options",
                              f"dataset.data_root={root}", "train_localizer.epochs=1", "train_localizer.batch_size=2",
                              "train_segmenter.iters=2", "train_segmenter.batch_size=2"]) == 0
    card = json.loads((tmp_path / "run" / "refine_masks" / "pseudo_masks" / "dataset_card.json").read_text())
    assert card["classes"] == ["background", "apple", "banana"]
    assert len(list((tmp_path / "run" / "refine_masks" / "pseudo_masks" / "SegmentationClass").glob("*.png"))) == 4


# ---- every later stage runs unchanged on a real-format data set -----------------------------

def test_the_whole_pipeline_runs_on_a_voc_tree(tmp_path):
    ft.make_voc(tmp_path / "data")
    cfg = tiny_on(tmp_path, dict(type="voc12", data_root=str(tmp_path / "data"), voc_dir="VOCdevkit/VOC2012",
                                 sbd_dir="benchmark_RELEASE/dataset", aug_masks_dir=None))
    cfg.train_localizer.split = cfg.export_maps.split = "train_aug"
    cfg.evaluate_maps.score_split = "train"
    run = tmp_path / "run"
    Pipeline(STAGES, cfg, run).run([s.name for s in STAGES])
    read = lambda stage: json.loads((run / stage / "manifest.json").read_text())
    assert read("export_maps")["artifacts"]["maps"] == len(ft.TRAIN_AUG)
    assert read("evaluate_maps")["artifacts"]["images_scored"] == len(ft.VOC_TRAIN)
    assert read("refine_masks")["artifacts"]["scored_against_gt"] == len(ft.VOC_TRAIN)
    assert read("train_segmenter")["artifacts"]["train_images"] == len(ft.TRAIN_AUG)
    assert read("evaluate_segmenter")["artifacts"]["scored_against_gt"] == len(ft.VOC_VAL)
