# BAS on COCO 2014: localizer on train (82,081 annotated images), seeds and pseudo-masks
# scored on train, the segmenter (80k iterations) on val GT.
#   python run_pipeline.py --config configs/coco14_bas_r50.py --cfg-options dataset.data_root=/data/coco
_base_ = [
    './_base_/runtime.py',
    './_base_/datasets/coco14.py',
    './_base_/models/bas_r50.py',
    './_base_/models/cam_partner_irn.py',
    './_base_/schedules/localizer_paper.py',
    './_base_/maps.py',
    './_base_/pseudo_masks.py',
    './_base_/random_walk_irn.py',
    './_base_/models/deeplabv3plus_r101.py',
    './_base_/schedules/segmenter_coco14_80k.py',
    './_base_/report.py',
]

# The IJCV BAS reports COCO 2014 segmentation results, but its public code has no COCO
# schedule; ours: the VOC schedule at 5 epochs (82k images each, about 8x VOC train_aug's).
train_localizer = dict(epochs=5)
check_premise = dict(step=8, offsets=(-32, 96))  # COCO's images are VOC-sized
export_maps = dict(scales=(1.0, 0.5, 1.5))  # 82k images: one scale fewer than on VOC
# Pseudo-masks as the paper's are made: IRN's confident/uncertain seeds at BAS-Extension's
# thresholds (fg 0.30, bg 0.17,
# each refined by IRN's label CRF, set (a): BAS-Extension step/cam_to_ir_label.py), IRN's
# boundary branch and random walk; the segmenter trains on the walk's.
refine_masks = dict(confident=dict(enabled=True, bg_threshold=0.17))  # the CRF: the base's set (a)
train_segmenter = dict(pseudo_masks='random_walk')
# BAS-Extension's walk (run_sample.py, step/make_sem_seg_labels.py): maps ** 1.5, background below 0.22
random_walk = dict(map_power=1.5, bg_threshold=0.22)
