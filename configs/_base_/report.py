# The run's HTML report (outputs/<run>/report/index.html).
report = dict(
    gallery_size=4,  # images in each of: best, worst, random (by per-image mIoU)
    tile_height=128,
    seed=0,
    compare_runs=(),  # other run folders shown side by side, e.g. ('outputs/default_cam',)
)
