"""Every CUDA path of the pipeline at the paper's scale, on synthetic images, in minutes.

    python bench/gpu_check.py                 # on a GPU: paper scale (VOC-size images, ResNet-50,
                                              # 448 crops, bf16 + channels_last, R101 segmenter)
    python bench/gpu_check.py --tiny          # CPU-sized (what the test suite runs)

It runs the paper config (`configs/voc12_bas_r50.py`: BAS + the fused CAM partner, IRN's
random walk) on a synthetic data set it generates: train_localizer and train_cam_partner
for a few steps, export at four scales with flip, the seeds, the CRF, train_boundary
for a few steps and the random walk, train_segmenter through mmseg (60 iterations) and
evaluate_segmenter. No weights are downloaded (random init:
this checks paths and speed, not accuracy). It prints, per stage, seconds, images/s and
peak GPU memory, and the device's name.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_config  # noqa: E402
from pipeline.log import setup_logging  # noqa: E402
from pipeline.runner import Pipeline  # noqa: E402
from stages import STAGES  # noqa: E402

# (stage, how many images it processes): for images/s
SCALE = {
    "paper": dict(train=48, val=8, image_size=(375, 500), crop=448, localizer_batch=16, localizer_epochs=1,
                  depth=50, partner_crop=512, seg_depth=101, seg_iters=60, seg_batch=16, seg_crop=(512, 512),
                  seg_scale=(2048, 512), workers=4, export_scales=(1.0, 0.5, 1.5, 2.0),
                  seg_test_scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)),
    "tiny": dict(train=8, val=4, image_size=(64, 80), crop=64, localizer_batch=4, localizer_epochs=1,
                 depth=18, partner_crop=64, seg_depth=18, seg_iters=2, seg_batch=2, seg_crop=(48, 48),
                 seg_scale=(80, 64), workers=0, export_scales=(1.0, 0.5), seg_test_scales=(1.0,)),
}


def overrides(s: dict) -> dict:
    no_download = dict(weights=None)
    return {
        "dataset": dict(_delete_=True, type="synthetic", seed=0, num_train=s["train"], num_val=s["val"],
                        num_classes=20, image_size=s["image_size"]),
        "localizer.backbone": dict(depth=s["depth"], **no_download),
        # Frozen BN statistics are ImageNet's in the recipe; from random init they are not
        # statistics at all (the partner diverges), so the check trains them.
        "cam_partner.backbone": dict(depth=s["depth"], frozen_bn=False, **no_download),
        "train_localizer": dict(split="train", epochs=s["localizer_epochs"], batch_size=s["localizer_batch"],
                                crop=s["crop"], num_workers=s["workers"]),
        "train_cam_partner": dict(split="train", epochs=1, batch_size=s["localizer_batch"], crop=s["partner_crop"],
                                  num_workers=s["workers"]),
        "boundary_net.backbone": dict(depth=s["depth"], **no_download),
        "train_boundary": dict(epochs=1, batch_size=s["localizer_batch"], crop=s["partner_crop"],
                               num_workers=s["workers"]),
        "export_maps": dict(split="train", scales=s["export_scales"], flip=True, num_workers=s["workers"]),
        "evaluate_maps": dict(score_split=None),
        "segmenter": dict(depth=s["seg_depth"], weights=None, allow_random_init=True),
        "train_segmenter": dict(iters=s["seg_iters"], batch_size=s["seg_batch"], crop=s["seg_crop"],
                                scale=s["seg_scale"], checkpoint_interval=s["seg_iters"], log_interval=10,
                                num_workers=s["workers"], amp=True),
        "evaluate_segmenter": dict(scales=s["seg_test_scales"], flip=True),
    }


def write_config(path: Path, scale: dict) -> None:
    lines = [f"_base_ = ['{ROOT / 'configs' / 'voc12_bas_r50.py'}']"]
    for key, value in overrides(scale).items():
        section, _, sub = key.partition(".")
        lines.append(f"{section} = dict({sub}=dict({_kwargs(value)}))" if sub else f"{section} = dict({_kwargs(value)})")
    path.write_text("\n".join(lines) + "\n")


def _kwargs(d: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in d.items())


def images_processed(stage: str, manifest: dict, scale: dict) -> int | None:
    if stage in ("train_localizer", "train_cam_partner"):
        return manifest["artifacts"]["steps"] * scale["localizer_batch"]
    if stage == "export_maps":
        return manifest["artifacts"]["maps"]
    if stage == "train_boundary":
        return manifest["artifacts"]["steps"] * scale["localizer_batch"]
    if stage in ("refine_masks", "random_walk"):
        return manifest["artifacts"]["pseudo_masks"]
    if stage == "train_segmenter":
        return manifest["artifacts"]["iterations"] * scale["seg_batch"]
    if stage == "evaluate_segmenter":
        return manifest["artifacts"]["predictions"]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="CPU-sized (default when no GPU is present)")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    scale = SCALE["tiny" if args.tiny or not cuda else "paper"]
    device = torch.cuda.get_device_name() if cuda else "CPU"
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        config = work / "gpu_check_config.py"
        write_config(config, scale)
        cfg = load_config(config)
        setup_logging(work, "WARNING")
        pipeline = Pipeline(STAGES, cfg, work / "run")
        rows = []
        for stage in [s.name for s in STAGES if s.name != "report"]:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            pipeline.run([stage])
            seconds = time.perf_counter() - t0
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
            manifest = json.loads((work / "run" / stage / "manifest.json").read_text())
            n = images_processed(stage, manifest, scale)
            rows.append((stage, seconds, n / seconds if n else None, peak))
    print(f"\ngpu_check on {device} ({'paper' if scale is SCALE['paper'] else 'tiny'} scale), torch {torch.__version__}")
    print(f"  {'stage':<20} {'seconds':>8} {'images/s':>9} {'peak GPU GiB':>13}")
    for stage, seconds, rate, peak in rows:
        print(f"  {stage:<20} {seconds:8.1f} {'-' if rate is None else f'{rate:9.1f}':>9} "
              f"{'-' if peak is None else f'{peak:13.2f}':>13}")
    print(f"  {'total':<20} {sum(r[1] for r in rows):8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
