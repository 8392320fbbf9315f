# Exporting the class maps and choosing the background threshold of the seeds
# (`export_maps`, `evaluate_maps`; docs/method.md, section 2).
export_maps = dict(
    split='train',
    scales=(1.0, 0.5, 1.5, 2.0),
    flip=True,
    # The reference always fuses BAS's maps with a CAM's: 'partner' trains that CAM in this
    # run (train_cam_partner, IRN's recipe); a CAM run folder fuses its model; None: off.
    fuse_cam='partner',
    num_workers=4,  # image decoding in DataLoader workers (not part of the fingerprint)
)
evaluate_maps = dict(
    # Background threshold: 'auto' picks it without GT (Otsu on the maps); 'oracle' keeps
    # the best of `sweep` on GT (the literature's optimistic figure; the manifest says so);
    # a number fixes it. Where GT exists the sweep is always scored, to show the gap.
    threshold='auto',
    sweep=(0.05, 0.95, 0.01),  # start, stop (inclusive), step
    score_split=None,  # None: every exported image with GT; VOC: 'train' (maps of train_aug)
)
# The BAS paper's premise check on the trained localizer (stages/check_premise.py): GT
# masks eroded / dilated from offsets[0] to offsets[1] px in `step` px steps, on the first
# `images` training images with GT, resized by `scale` first (the localizer's training
# scale; offsets stay in the original pixels). Without GT the stage only says so.
check_premise = dict(images=60, step=4, offsets=(-16, 40), scale=1.0, min_object_share=0.0)
