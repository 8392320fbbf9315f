# COCO, 2017 or 2014 layout (README, 'Real data sets'). Set data_root once:
#   --cfg-options dataset.data_root=/data/coco
# which holds train2017/ (or train2014/), val2017/ and annotations/instances_{split}.json.
dataset = dict(
    type='coco',
    data_root='data/coco',
    year=None,  # 2014 or 2017; None: the year whose image folders are there
    splits=('train', 'val'),  # image folders <split><year>/; absent ones are left out
    annotations='annotations',
    ann_file='instances_{split}.json',  # {split}: the image folder's name (train2017, ...)
    classes='all',  # 'all' (80), 'voc20' (COCO's names mapped to VOC's 20), or a list of category names
    negatives='keep',  # images without a chosen class: 'keep' (background-only) or 'drop'
    crowd='ignore',  # crowd regions -> 255 ('exclude': not drawn)
    image_list='annotated',  # images with >= 1 annotation; 'all': every image
    masks_dir=None,  # GT mask cache; None: <data_root>/SegmentationClass_<rules> (the run's folder if read-only)
    on_bad_item='error',
    n_jobs=-1,
)
