# COCO 2014 (README, 'Real data sets'). Set data_root once:
#   --cfg-options dataset.data_root=/data/coco
# which holds train2014/, val2014/ and annotations/instances_{train,val}2014.json.
dataset = dict(
    type='coco14',
    data_root='data/coco',
    train_images='train2014',
    val_images='val2014',
    annotations='annotations',
    crowd='ignore',  # crowd regions -> 255 ('exclude': not drawn)
    image_list='annotated',  # images with >= 1 annotation (82,081 / 40,137); 'all': 82,783 / 40,504
    masks_dir=None,  # GT mask cache; None: <data_root>/SegmentationClass_crowd_<crowd>
    on_bad_item='error',
    n_jobs=-1,
)
