# Your own photos, in one command:
#   python run_pipeline.py --config configs/folder.py --cfg-options dataset.data_root=/path/to/folder
# The folder holds images/<id>.jpg and labels.csv ('image_id,labels', class names separated by
# spaces); classes.txt, masks/<id>.png (GT, to be scored) and splits/<name>.txt are optional
# (pipeline/datasets/folder.py). Without splits every image is 'train': the pseudo-masks are
# made for them, and the segmenter trains on them without a validation score.
# The recipe is the real-photo one (configs/real_voc20_bas.py: ImageNet EfficientNet-Lite0 with
# packaged weights, sized for a 2-core CPU); for a GPU, inherit configs/real_voc20_bas_gpu.py.
_base_ = ['./real_voc20_bas.py']

dataset = dict(
    _delete_=True,
    type='folder',
    data_root=None,  # required: --cfg-options dataset.data_root=/path/to/folder
    image_suffix='.jpg',
    on_bad_item='error',  # 'skip': leave out unreadable images (counted and reported)
    n_jobs=-1,
)
