# IRN's random walk (Ahn et al., CVPR 2019; jiwoon-ahn/irn), the refinement behind the
# BAS paper's 71.1 VOC pseudo-masks. On when train_segmenter.pseudo_masks='random_walk'
# (stages train_boundary and random_walk); it learns from refine_masks' pseudo-masks,
# which should then be IRN's confident/uncertain split (refine_masks.confident).
boundary_net = dict(
    backbone=dict(depth=50, output_stride=16, weights='IMAGENET1K_V1', frozen_bn=True),
    loss_weights=dict(bg_pos=0.25, fg_pos=0.25, neg=0.5),  # (bg/2 + fg/2 + neg) / 2
)
train_boundary = dict(
    epochs=3,
    batch_size=32,
    lr=0.1,
    head_lr_mult=1.0,  # IRN: the edge layers at 1x lr (its 10x group is the displacement branch, not built)
    momentum=0.0,  # IRN's optimiser slip (weight decay in SGD's momentum slot): momentum 0 is its step
    resize_long=(250, 750),  # IRN rescales by 0.5-1.5; VOC's long side is ~500
    crop=512,
    sync_bn=False,  # the backbone is frozen; the heads use GroupNorm
    checkpoint_every_steps=200,
)
# random_walk: IRN's inference settings are RandomWalkSettings' defaults (stages/random_walk.py).
