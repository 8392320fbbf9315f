# PASCAL VOC 2012 + SBD (README, 'Real data sets'). Set data_root once:
#   --cfg-options dataset.data_root=/data
# which holds VOCdevkit/VOC2012 and benchmark_RELEASE/dataset (SBD).
dataset = dict(
    type='voc12',
    data_root='data',
    voc_dir='VOCdevkit/VOC2012',
    sbd_dir='benchmark_RELEASE/dataset',  # None: no SBD (train_aug = VOC train)
    aug_masks_dir=None,  # SBD .mat -> PNG cache; None: <voc_dir>/SegmentationClassAug
    on_bad_item='error',  # 'skip': leave bad images out, counted in the manifest
    n_jobs=-1,
)
