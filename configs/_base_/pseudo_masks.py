# Dense-CRF refinement of the class maps into the pseudo-mask data set (docs/method.md, section 2).
refine_masks = dict(
    # Background score: 'chosen' = the threshold evaluate_maps chose, 'fixed' = `threshold`,
    # 'power' = (1 - max class map) ** alpha.
    # Default: set (b), on probabilities (PSA/SEAM). The label-based IRN/BAS set (a) is
    # crf=dict(unary='labels', gt_prob=0.7, gaussian=(3, 3), bilateral=(50, 5, 10)).
    # The widths (sxy) are for VOC's ~500 px images: reference_size=500 scales them by the
    # image's long side / 500, so they keep their reach on other sizes (None: as given).
    crf=dict(unary='probabilities', iterations=10, gaussian=(3, 3), bilateral=(80, 13, 10), gt_prob=0.7,
             reference_size=500),
    # IRN-style confident/uncertain split (enabled=True): foreground seeds from fg_threshold,
    # background seeds from bg_threshold, each CRF-refined; where they disagree -> 255.
    confident=dict(enabled=False, fg_threshold=0.30, bg_threshold=0.05),
)
