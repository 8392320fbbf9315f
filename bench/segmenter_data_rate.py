"""How many training samples one data-loader worker prepares per second for the segmenter:
mmseg's training pipeline of the VOC schedule (load JPEG and PNG, random resize to
(2048, 512) x 0.5-2.0, crop 512, flip, photometric distortion, pack), on one core.

    python bench/segmenter_data_rate.py --pseudo-masks outputs/<run>/refine_masks/pseudo_masks

A GPU that trains at R images/s needs about R / (this rate) workers per process
(`train_segmenter.num_workers`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pseudo-masks", type=Path, required=True, help="a pseudo-mask data set folder")
    parser.add_argument("--images", type=int, default=60)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import pipeline.segmenter  # noqa: F401  (mmseg on mmcv-lite)
    from mmseg.registry import TRANSFORMS
    from mmseg.utils import register_all_modules

    from pipeline.artifacts import CARD, MASKS_SUBDIR
    from pipeline.segmenter.mmseg_config import SegmenterSchedule, _train_pipeline

    register_all_modules()
    schedule = SegmenterSchedule()  # the VOC schedule's augmentation: its defaults
    steps = [TRANSFORMS.build(step) for step in _train_pipeline(schedule)]
    card = json.loads((args.pseudo_masks / CARD).read_text())
    masks = sorted((args.pseudo_masks / MASKS_SUBDIR).glob("*.png"))[: args.images + 5]

    def sample(mask: Path) -> None:
        record = dict(img_path=f"{card['images_dir']}/{mask.stem}{card['image_suffix']}", seg_map_path=str(mask),
                      reduce_zero_label=False, seg_fields=[])
        for step in steps:
            record = step(record)

    for mask in masks[:5]:  # warm-up
        sample(mask)
    t0 = time.perf_counter()
    for mask in masks[5:]:
        sample(mask)
    rate = (len(masks) - 5) / (time.perf_counter() - t0)
    print(f"segmenter training pipeline (crop {schedule.crop}, scale {schedule.scale} x {schedule.ratio_range}): "
          f"{rate:.1f} samples/s on one core ({len(masks) - 5} images of {args.pseudo_masks})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
