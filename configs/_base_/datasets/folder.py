# A user's own data set (folder convention in pipeline/datasets/folder.py and the README).
dataset = dict(
    type='folder',
    data_root='data/my_dataset',
    image_suffix='.jpg',
    on_bad_item='error',
    n_jobs=-1,
)
