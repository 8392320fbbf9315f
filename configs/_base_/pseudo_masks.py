# Dense-CRF refinement of the class maps into the pseudo-mask data set (docs/method.md, section 2).
refine_masks = dict(
    # Background score: 'chosen' = the threshold evaluate_maps chose, 'fixed' = `threshold`,
    # 'power' = (1 - max class map) ** alpha.
    # IRN's / BAS's label CRF, set (a) (docs/method.md, section 2): the seeds as labels of
    # confidence gt_prob. BAS's maps are nearly binary once it has converged (the GT-free
    # saturation: 94-99 % of its training masks' values beyond 0.05 / 0.95), so a unary from
    # their values leaves the CRF no doubt to resolve and spreads a broad class over its
    # neighbours; a label unary lets the image's edges move the boundary. Set (b) (PSA, SEAM):
    # crf=dict(unary='probabilities', bilateral=(80, 13, 10)).
    # The widths (sxy) are for VOC's ~500 px images: reference_size=500 scales them by the
    # image's long side / 500, so they keep their reach on other sizes (None: as given).
    crf=dict(unary='labels', iterations=10, gaussian=(3, 3), bilateral=(50, 5, 10), gt_prob=0.7,
             reference_size=500),
    # IRN-style confident/uncertain split (enabled=True): foreground seeds from fg_threshold,
    # background seeds from bg_threshold, each CRF-refined; where they disagree -> 255.
    confident=dict(enabled=False, fg_threshold=0.30, bg_threshold=0.05),
)
