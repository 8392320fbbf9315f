# BAS on PASCAL VOC 2012 + SBD, the paper's setting for every stage, on GPU:
#   python run_pipeline.py --config configs/voc12_bas_r50.py --cfg-options dataset.data_root=/data
#   torchrun --nproc_per_node 4 run_pipeline.py --config configs/voc12_bas_r50.py ...
# The localizer trains on train_aug (10,582) and exports train_aug maps (the segmenter's
# training set); seeds and pseudo-masks are scored on VOC train (1,464) as in the
# literature; the segmenter on VOC val (1,449) GT.
_base_ = [
    './_base_/runtime.py',
    './_base_/datasets/voc12.py',
    './_base_/models/bas_r50.py',
    './_base_/models/cam_partner_irn.py',
    './_base_/schedules/localizer_paper.py',
    './_base_/maps.py',
    './_base_/pseudo_masks.py',
    './_base_/random_walk_irn.py',
    './_base_/models/deeplabv3plus_r101.py',
    './_base_/schedules/segmenter_voc12_20k.py',
    './_base_/report.py',
]

train_localizer = dict(split='train_aug')
export_maps = dict(split='train_aug')
evaluate_maps = dict(score_split='train')
check_premise = dict(step=8, offsets=(-32, 96))  # VOC's objects are ~100-300 px across
# Pseudo-masks as the paper's are made: IRN's confident/uncertain seeds at BAS-Extension's
# thresholds (fg 0.30, bg 0.17,
# each refined by IRN's label CRF, set (a): BAS-Extension step/cam_to_ir_label.py), IRN's
# boundary branch and random walk; the segmenter trains on the walk's.
refine_masks = dict(confident=dict(enabled=True, bg_threshold=0.17))  # the CRF: the base's set (a)
train_segmenter = dict(pseudo_masks='random_walk')
# BAS-Extension's walk (run_sample.py, step/make_sem_seg_labels.py): maps ** 1.5, background below 0.22
random_walk = dict(map_power=1.5, bg_threshold=0.22)
