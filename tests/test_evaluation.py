import numpy as np

from pipeline.evaluation import SeedSweep, confusion_matrix, iou_per_class, mean_iou


def test_confusion_matrix_ignores_void_and_counts_rows_as_gt():
    gt = np.array([[0, 1, 255], [2, 2, 1]])
    pred = np.array([[0, 2, 1], [2, 0, 1]])
    conf = confusion_matrix(gt, pred, 3)
    assert conf.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 1]]


def test_iou_skips_classes_absent_from_gt_and_prediction():
    conf = np.array([[3, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    iou = iou_per_class(conf)
    assert np.allclose(iou[:2], [3 / 4, 2 / 3]) and np.isnan(iou[2:]).all()
    assert np.isclose(mean_iou(conf), (3 / 4 + 2 / 3) / 2)


def test_seed_sweep_matches_brute_force():
    rng = np.random.default_rng(0)
    thresholds = np.round(np.arange(0.05, 0.6, 0.05), 3)
    sweep = SeedSweep(6, thresholds)
    brute = np.zeros((len(thresholds), 6, 6), dtype=np.int64)
    for n in (2, 0, 1, 3):
        classes = np.sort(rng.choice(np.arange(1, 6), size=n, replace=False))
        maps = rng.random((n, 20, 30)).astype(np.float32)
        gt = rng.integers(0, 6, size=(20, 30)).astype(np.uint8)
        gt[rng.random((20, 30)) < 0.1] = 255
        sweep.add(maps, classes, gt)
        for i, t in enumerate(thresholds):
            if n == 0:
                pred = np.zeros_like(gt)
            else:
                pred = np.where(maps.max(0) > t, classes[maps.argmax(0)], 0)
            brute[i] += confusion_matrix(gt, pred, 6)
    assert np.array_equal(sweep.conf, brute)


def test_otsu_threshold_of_constant_maps_falls_back_to_a_half():
    import numpy as np

    from pipeline.map_statistics import HISTOGRAM_BINS, otsu_threshold

    one_bin = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    one_bin[-1] = 1000  # every pixel's strongest value is 1.0 (constant maps, max-normalised)
    assert otsu_threshold(one_bin) == 0.5
    assert otsu_threshold(np.zeros(HISTOGRAM_BINS, dtype=np.int64)) == 0.5
    two = one_bin.copy()
    two[100] = 1000
    assert 0.1 < otsu_threshold(two) <= 1.0
