# Exporting the class maps and choosing the background threshold of the seeds
# (`export_maps`, `evaluate_maps`; docs/method.md, section 2).
export_maps = dict(
    # The reference always fuses BAS's maps with a CAM's: the stage that trains that CAM in
    # this run (IRN's recipe); a CAM run folder fuses its model; None: off.
    fuse_cam='train_cam_partner',
    num_workers=4,  # image decoding in DataLoader workers (not part of the fingerprint)
)
evaluate_maps = dict(
    # Background threshold: 'auto' picks it without GT (Otsu on the maps); 'oracle' keeps
    # the best of `sweep` on GT (the literature's optimistic figure; the manifest says so);
    # a number fixes it. Where GT exists the sweep is always scored, to show the gap.
)
# The BAS paper's premise check on the trained localizer (stages/check_premise.py) runs
# with pipeline/premise.py's PremiseSettings as they are; a config overrides them here.
