# IRN's random walk (Ahn et al., CVPR 2019; jiwoon-ahn/irn), the refinement behind the
# BAS paper's 71.1 VOC pseudo-masks. On when train_segmenter.pseudo_masks='random_walk'
# (stages train_boundary and random_walk); it learns from refine_masks' pseudo-masks,
# which should then be IRN's confident/uncertain split (refine_masks.confident).
boundary_net = dict(
    backbone=dict(depth=50, output_stride=16, weights='IMAGENET1K_V1', frozen_bn=True),
    radius=10,  # training pairs up to 10 stride-4 cells apart
    train_backbone=False,  # IRN: ImageNet features frozen, the boundary heads learn
    loss_weights=dict(bg_pos=0.25, fg_pos=0.25, neg=0.5),  # (bg/2 + fg/2 + neg) / 2
)
train_boundary = dict(
    epochs=3,
    batch_size=32,
    lr=0.1,
    head_lr_mult=1.0,  # IRN: the edge layers at 1x lr (its 10x group is the displacement branch, not built)
    momentum=0.0,  # IRN's optimiser slip (weight decay in SGD's momentum slot): momentum 0 is its step
    weight_decay=1e-4,
    poly_power=0.9,
    resize='long',
    resize_long=(250, 750),  # IRN rescales by 0.5-1.5; VOC's long side is ~500
    crop=512,
    flip=True,
    amp='bf16',
    channels_last=True,
    sync_bn=False,  # the backbone is frozen; the heads use GroupNorm
    train_biases=True,
    num_workers=4,
    seed=0,
    classifier_warmup_epochs=0,
    checkpoint_every_steps=200,
)
random_walk = dict(
    radius=5,  # pairs at inference
    beta=10.0,  # affinity ** beta
    exp_times=8,  # 2 ** 8 = 256 steps
    bg_threshold=0.25,  # IRN's sem_seg_bg_thres
    flip=True,
)
