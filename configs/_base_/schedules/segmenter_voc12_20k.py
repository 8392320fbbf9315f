# Segmenter schedule for PASCAL VOC 2012 (train_aug pseudo-masks, val GT): mmseg's
# DeepLabV3+ VOC-aug recipe at 20k iterations (the WSSS papers' 20k-30k), batch 16,
# crop 512, scales 0.5-2.0; test time as in WSSS papers: multi-scale + flip + dense CRF
# with DeepLab's CRF parameters.
train_segmenter = dict(
    amp='bf16',  # CUDA only: bf16 autocast (mmengine's BF16OptimWrapper, no loss scaler); None: fp32
    # per process; one worker prepares ~20 samples/s (bench/segmenter_data_rate.py, COCO photos,
    # one contended core), DeepLabV3+ R101 in bf16 trains at 60-80 images/s on an H100
    num_workers=8,
    # Iterations, lr, crop, scales: SegmenterSchedule's defaults (pipeline/segmenter/mmseg_config.py).
    # pseudo_masks: the stage whose pseudo-masks it trains on ('random_walk': IRN's, which
    # switches on train_boundary and random_walk, configs/_base_/random_walk_irn.py).
)
evaluate_segmenter = dict(
    scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75),
    flip=True,
    # DeepLab's CRF (pos_w 3, pos_xy_std 1, bi_w 4, bi_xy_std 67, bi_rgb_std 3); min_prob:
    # classes below it everywhere in an image are left out of its CRF.
    crf=dict(enabled=True, min_prob=0.01, unary='probabilities', iterations=10,
             gaussian=(1, 3), bilateral=(67, 3, 4), reference_size=500),  # widths for ~500 px images
)
