# The paper's localizer schedule: SGD lr 0.005 (heads 10x), wd 1e-4, poly 0.9, 10 epochs,
# total batch 16, resize to 512, random flip, random crop 448. Momentum is a real 0.9.
train_localizer = dict(
    split='train',
    epochs=10,
    batch_size=16,  # total over all processes
    lr=0.005,
    head_lr_mult=10.0,
    momentum=0.9,
    weight_decay=1e-4,
    poly_power=0.9,
    resize_long=(512, 512),  # long side drawn from this range
    crop=448,
    flip=True,
    amp='bf16',  # CUDA only: 'bf16', 'fp16' or None
    channels_last=True,  # CUDA only
    num_workers=4,
    seed=0,
    checkpoint_every_steps=200,  # VOC train_aug: ~660 steps an epoch
)
export_maps = dict(
    split='train',
    scales=(1.0, 0.5, 1.5, 2.0),
    flip=True,
    fuse_cam_run=None,  # a CAM-baseline run folder whose maps are fused in (paper's code), or None
)
evaluate_maps = dict(
    # Background threshold: 'auto' picks it without GT (Otsu on the maps); 'oracle' keeps
    # the best of `sweep` on GT (the literature's optimistic figure; the manifest says so);
    # a number fixes it. Where GT exists the sweep is always scored, to show the gap.
    threshold='auto',
    sweep=(0.05, 0.95, 0.01),  # start, stop (inclusive), step
    score_split=None,  # None: every exported image with GT; VOC: 'train' (maps of train_aug)
)
