# The default run with IRN's random walk after the CRF (issue: the step behind the
# paper's pseudo-masks), on CPU. Seeds and localizer as in default.py; the CRF makes
# IRN's confident/uncertain seeds, a boundary net learns from them, the walk spreads the
# maps, and the segmenter trains on the walk's masks. The report shows
# seed -> CRF -> random walk -> segmenter.
_base_ = ['./default.py', './_base_/random_walk_irn.py']

refine_masks = dict(confident=dict(enabled=True))  # IRN's thresholds: fg 0.30, bg 0.05
train_segmenter = dict(pseudo_masks='random_walk')

# IRN's lengths are for VOC's ~500-px images; these are 128-160 px (x0.3): the training
# radius 10 -> 3 and the walk's 5 -> 2 stride-4 cells, the rescale range likewise.
boundary_net = dict(
    # IRN trains its boundary heads over frozen ImageNet ResNet features. The boundary net is
    # a ResNet (IRN's) and the default's localizer an EfficientNet, so its features cannot be
    # borrowed ('localizer' needs the same ResNet): a ResNet-18 from random init, trained whole.
    backbone=dict(depth=18, output_stride=16, weights=None, frozen_bn=False),
    radius=3,
    train_backbone=True,
)
train_boundary = dict(
    epochs=10,  # 300 steps of 8 (IRN: 3 epochs of VOC train_aug, ~1000 steps of 32)
    batch_size=8,
    resize_long=(80, 240),  # 0.5-1.5 x the images' long side, as IRN
    crop=96,
    amp=None,
    num_workers=1,
    checkpoint_every_steps=10,
)
random_walk = dict(radius=2)
