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
)
export_maps = dict(
    split='train',
    scales=(1.0, 0.5, 1.5, 2.0),
    flip=True,
    fuse_cam_run=None,  # a CAM-baseline run folder whose maps are fused in (paper's code), or None
)
evaluate_maps = dict(
    # Background threshold: None sweeps `sweep` and keeps the best (chosen on GT, and the
    # manifest says so); a number fixes it.
    threshold=None,
    sweep=(0.05, 0.60, 0.01),  # start, stop (inclusive), step
    score_split=None,  # None: every exported image with GT; VOC: 'train' (maps of train_aug)
)
