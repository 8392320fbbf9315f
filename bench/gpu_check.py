"""Every stage of the paper config at the paper's scale on synthetic images, its rate
after warm-up, and the whole-VOC time those rates imply.

    python bench/gpu_check.py                  # on a GPU: 500 images with VOC-like sizes, the paper
                                               # config (ResNet-50 BAS + CAM partner, IRN's random walk,
                                               # DeepLabV3+ R101 in bf16)
    python bench/gpu_check.py --images 24      # on the CPU: small models and images (the tests run it)
    python bench/gpu_check.py --coco ../shared/data/coco-real-half   # real photos' sizes (VOC's 20 classes)

It runs `configs/voc12_bas_r50.py` on a synthetic data set it generates (no weights are
downloaded: random init checks paths and speed, not accuracy): one epoch of each
trained network, the segmenter for `--segmenter-iters` iterations, every per-image
stage over all images. Rates are those the stages record in their manifests, measured
after their first steps (model loading, cuDNN autotuning, first allocations left out);
evaluate_maps records none, so its rate includes start-up. The VOC column divides the
work of the paper config on VOC 2012 + SBD (train_aug 10,582 images, val 1,449, its
epochs and iterations) by those rates: an extrapolation, labelled so. Where the machine
has two or more GPUs the per-image stages run again under torchrun on two of them.

Image sizes: VOC's images are mostly 500 px on the long side; here 40 % are 375x500,
15 % 500x375, 10 % 333x500 and the rest 500 on the long side by 100-500 on the short
(an approximation of VOC's spread, not a measurement of it). `--coco DIR` runs the same
stages on a COCO tree in VOC's 20 classes instead: real photos with their real sizes.

The synthetic images are drawn in parallel on every core. The JSON (`--json`) is
rewritten after every stage, so a check stopped by a short allocation keeps the rows
that finished. For the localizer and the segmenter it also counts the FLOPs of one
training step per image (torch's FlopCounterMode: forward and backward, 2 per
multiply-add) and prints the rate achieved at the measured images/s: set beside the
GPU's peak, the share says what is left to gain.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.atomic import write_json  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.log import setup_logging  # noqa: E402
from pipeline.runner import Pipeline  # noqa: E402
from pipeline.versions import package_versions  # noqa: E402
from pipeline.config import settings_of  # noqa: E402
from pipeline.artifacts import Predictions, Segmenter, Weights  # noqa: E402
from pipeline.stage import stages_for  # noqa: E402

STAGES = stages_for()
TRAINING = [s.name for s in STAGES if s.artifact and issubclass(s.artifact, (Weights, Segmenter))]
# The stages that work image by image, sharded under torchrun: the distributed ones that train nothing
PER_IMAGE = [s.name for s in STAGES if s.distributed and s.name not in TRAINING]

PAPER_CONFIG = ROOT / "configs" / "voc12_bas_r50.py"
VOC_TRAIN_AUG, VOC_VAL = 10582, 1449

SCALE = {
    "paper": dict(crop=448, localizer_batch=16, depth=50, partner_crop=512, seg_depth=101, seg_batch=16,
                  seg_crop=(512, 512), seg_scale=(2048, 512), workers=8, export_scales=(1.0, 0.5, 1.5, 2.0),
                  seg_test_scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)),
    "tiny": dict(crop=64, localizer_batch=4, depth=18, partner_crop=64, seg_depth=18, seg_batch=2,
                 seg_crop=(48, 48), seg_scale=(80, 64), workers=0, export_scales=(1.0, 0.5),
                 seg_test_scales=(1.0,)),
}


def voc_like_sizes(n: int, seed: int = 0) -> list[tuple[int, int]]:
    """`n` (height, width) pairs: 40 % 375x500, 15 % 500x375, 10 % 333x500, the rest 500 on
    the long side and 100-500 on the short, either way up."""
    rng = np.random.default_rng(seed)
    sizes = []
    for u in rng.random(n):
        if u < 0.40:
            sizes.append((375, 500))
        elif u < 0.55:
            sizes.append((500, 375))
        elif u < 0.65:
            sizes.append((333, 500))
        else:
            short = int(rng.integers(100, 501))
            sizes.append((short, 500) if rng.random() < 0.5 else (500, short))
    return sizes


def overrides(s: dict, images: int, paper: bool, segmenter_iters: int, coco: Path | None) -> dict:
    no_download = dict(weights=None)
    sizes = dict(image_sizes=voc_like_sizes(images)) if paper else dict(image_size=(56, 96))
    dataset = dict(_delete_=True, type="synthetic", seed=0, num_train=images, num_val=max(4, images // 7),
                   num_classes=20, n_jobs=-1, **sizes)
    if coco is not None:
        dataset = dict(_delete_=True, type="coco", data_root=str(coco.resolve()), classes="voc20", negatives="drop")
    return {
        "dataset": dataset,
        "localizer.backbone": dict(depth=s["depth"], **no_download),
        # Frozen BN statistics are ImageNet's in the recipe; from random init they are not
        # statistics at all (the partner diverges), so the check trains them.
        "cam_partner.backbone": dict(depth=s["depth"], frozen_bn=False, **no_download),
        "train_localizer": dict(split="train", epochs=1, batch_size=s["localizer_batch"], crop=s["crop"],
                                num_workers=s["workers"]),
        "train_cam_partner": dict(split="train", epochs=1, batch_size=s["localizer_batch"], crop=s["partner_crop"],
                                  num_workers=s["workers"]),
        "boundary_net.backbone": dict(depth=s["depth"], **no_download),
        "train_boundary": dict(epochs=1, batch_size=s["localizer_batch"], crop=s["partner_crop"],
                               num_workers=s["workers"]),
        "export_maps": dict(split="train", scales=s["export_scales"], flip=True, num_workers=s["workers"]),
        "evaluate_maps": dict(score_split=None),
        "segmenter": dict(depth=s["seg_depth"], weights=None, allow_random_init=True),
        "train_segmenter": dict(iters=segmenter_iters, batch_size=s["seg_batch"], crop=s["seg_crop"],
                                scale=s["seg_scale"], checkpoint_interval=segmenter_iters, log_interval=10,
                                num_workers=s["workers"]),
        "evaluate_segmenter": dict(scales=s["seg_test_scales"], flip=True),
    }


def write_config(path: Path, settings: dict) -> None:
    lines = [f"_base_ = ['{PAPER_CONFIG}']"]
    for key, value in settings.items():
        section, _, sub = key.partition(".")
        lines.append(f"{section} = dict({sub}=dict({_kwargs(value)}))" if sub else f"{section} = dict({_kwargs(value)})")
    path.write_text("\n".join(lines) + "\n")


def _kwargs(d: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in d.items())


def voc_work() -> dict[str, int]:
    """Images each stage processes on VOC 2012 + SBD under the paper config."""
    cfg = load_config(PAPER_CONFIG)
    work = {}
    for stage in STAGES:
        if stage.name in TRAINING:
            schedule = settings_of(cfg, stage.name)
            steps = getattr(schedule, "iters", None)  # the segmenter counts iterations, the others epochs
            work[stage.name] = steps * schedule.batch_size if steps else VOC_TRAIN_AUG * schedule.epochs
        elif stage.name in PER_IMAGE:
            work[stage.name] = VOC_VAL if stage.artifact is Predictions else VOC_TRAIN_AUG
    return work


def training_flops_per_image(model: torch.nn.Module, step, batch: int = 2) -> float:
    """FLOPs of one training step (forward and backward), per image, as torch counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    with FlopCounterMode(display=False) as counter:
        step(model, batch).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def localizer_flops(cfg, run: Path, crop: int) -> float:
    """Per-image training FLOPs of the run's localizer at its crop size."""
    from pipeline.models import build_localizer

    num_classes = len(json.loads((run / "prepare" / "dataset.json").read_text())["classes"]) - 1
    model, _ = build_localizer(dict(cfg.localizer, backbone=dict(cfg.localizer.backbone, weights=None)), num_classes)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)

    def step(net, b):
        labels = torch.zeros(b, num_classes, device=device)
        labels[:, 0] = 1
        losses = net(torch.randn(b, 3, crop, crop, device=device), labels)
        return sum(v for v in losses.values() if torch.is_tensor(v) and v.requires_grad)

    return training_flops_per_image(model, step)


def segmenter_flops(run: Path, crop: tuple[int, int]) -> float:
    """Per-image training FLOPs of the run's mmseg segmenter (decode and auxiliary heads) at its crop."""
    from mmengine.config import Config
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    from pipeline.segmenter import mmcv_compat

    mmcv_compat.install()
    register_all_modules()
    cfg = Config.fromfile(str(run / "train_segmenter" / "segmenter_config.py"))
    cfg.model.backbone.init_cfg = None
    for part in ("backbone", "decode_head", "auxiliary_head"):
        if part in cfg.model and "norm_cfg" in cfg.model[part]:
            cfg.model[part].norm_cfg = dict(type="BN", requires_grad=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = MODELS.build(cfg.model).to(device)

    def step(net, b):
        samples = []
        for _ in range(b):
            sample = SegDataSample(gt_sem_seg=PixelData(data=torch.zeros(1, *crop, dtype=torch.long, device=device)))
            sample.set_metainfo(dict(img_shape=crop, pad_shape=crop, ori_shape=crop))
            samples.append(sample)
        losses = net.loss(torch.randn(b, 3, *crop, device=device), samples)
        return sum(v for k, v in losses.items() if "loss" in k)

    return training_flops_per_image(model, step)


def measured_rate(manifest: dict) -> float | None:
    """Images/s after warm-up, all processes together, as the stage recorded it."""
    info = manifest["info"]
    if "throughput_per_rank" in info:
        rates = [r["items_per_s"] for r in info["throughput_per_rank"]]
        return None if None in rates else sum(rates)
    throughput = info.get("throughput") or {}
    return throughput.get("images_per_s", throughput.get("items_per_s"))


def images_processed(stage: str, manifest: dict, settings: dict) -> int | None:
    a = manifest["artifacts"]
    if "iterations" in a:  # the segmenter
        return a["iterations"] * settings["seg_batch"]
    if "steps" in a:  # a localizer-style training loop
        return a["steps"] * settings["localizer_batch"]
    return a.get("images")  # every per-image stage counts its images


def row(stage: str, seconds: float, manifest: dict, settings: dict, peak: float | None, work: dict) -> dict:
    n = images_processed(stage, manifest, settings)
    rate, source = measured_rate(manifest), "after warm-up"
    if rate is None and n:
        rate, source = n / seconds, "incl. start-up"
    return {"stage": stage, "seconds": round(seconds, 1), "images": n, "images_per_s": rate, "rate": source,
            "peak_gpu_gib": peak, "voc_images": work.get(stage),
            "voc_minutes": work[stage] / rate / 60 if stage in work and rate else None}


def two_gpu_rates(config: Path, run: Path) -> list[dict]:
    """The per-image stages again, under torchrun on two GPUs."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(ROOT / "run_pipeline.py"),
           "--config", str(config), "--work-dir", str(run), "--stage", ",".join(PER_IMAGE), "--force"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    rows = []
    for stage in PER_IMAGE:
        manifest = json.loads((run / stage / "manifest.json").read_text())
        rows.append({"stage": stage, "images_per_s": measured_rate(manifest),
                     "items_per_rank": manifest["info"]["items_per_rank"]})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=None, help="training images (default: 500 on a GPU, 24 on "
                                                                  "the CPU); val gets a seventh of it")
    parser.add_argument("--segmenter-iters", type=int, default=None, help="default: 60 on a GPU, 8 on the CPU")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the table here (after every stage)")
    parser.add_argument("--coco", type=Path, default=None,
                        help="a COCO tree: its photos (VOC's 20 classes, real sizes) instead of synthetic images")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    settings = SCALE["paper" if cuda else "tiny"]
    images = args.images or (500 if cuda else 24)
    iters = args.segmenter_iters or (60 if cuda else 8)
    device = torch.cuda.get_device_name() if cuda else "CPU"
    work = voc_work()
    source = f"COCO photos of {args.coco} (VOC's 20 classes)" if args.coco else \
        ("synthetic, VOC-like sizes" if cuda else "synthetic, tiny")
    report = {"device": device, "images": "every photo of the tree" if args.coco else images, "source": source, "torch": torch.__version__,
              "versions": package_versions(), "stages": [], "voc_hours": None, "two_gpus": [], "flops": {}}

    def save() -> None:
        report["voc_hours"] = sum(r["voc_minutes"] or 0 for r in report["stages"]) / 60
        if args.json:
            write_json(args.json, report)  # atomic: a kill mid-write leaves the previous table

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.work_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "gpu_check_config.py"
        write_config(config, overrides(settings, images, cuda, iters, args.coco))
        setup_logging(folder, "WARNING")
        cfg = load_config(config)
        pipeline = Pipeline(STAGES, cfg, folder / "run")
        for stage in [s.name for s in STAGES if s.name != "report"]:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            pipeline.run([stage])
            seconds = time.perf_counter() - t0
            peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
            manifest = json.loads((folder / "run" / stage / "manifest.json").read_text())
            report["stages"].append(row(stage, seconds, manifest, settings, peak, work))
            if stage == "train_localizer":
                report["flops"][stage] = localizer_flops(cfg, folder / "run", settings["crop"])
            if stage == "train_segmenter":
                report["flops"][stage] = segmenter_flops(folder / "run", settings["seg_crop"])
            save()
        if cuda and torch.cuda.device_count() >= 2:
            report["two_gpus"] = two_gpu_rates(config, folder / "run")
            save()
    print_report(report, cuda)
    return 0


def print_report(report: dict, cuda: bool) -> None:
    rows, device = report["stages"], report["device"]
    total = sum(r["voc_minutes"] or 0 for r in rows)
    print(f"\ngpu_check on {device}: {report['images']} training images ({report['source']}), torch {report['torch']}")
    print(f"  {'stage':<20} {'seconds':>8} {'images':>7} {'images/s':>9} {'rate':<15} {'peak GiB':>9} "
          f"{'VOC images':>10} {'VOC min (extrapolated)':>23} {'share':>6}")
    for r in rows:
        rate = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.1f}"
        voc = "-" if r["voc_minutes"] is None else f"{r['voc_minutes']:.1f}"
        share = "-" if not r["voc_minutes"] or not total else f"{100 * r['voc_minutes'] / total:.0f} %"
        print(f"  {r['stage']:<20} {r['seconds']:8.1f} {r['images'] or '-':>7} {rate:>9} "
              f"{r['rate'] if r['images_per_s'] else '':<15} {r['peak_gpu_gib'] or '-':>9} "
              f"{r['voc_images'] or '-':>10} {voc:>23} {share:>6}")
    print(f"  {'total':<20} {sum(r['seconds'] for r in rows):8.1f} {'':>7} {'':>9} {'':<15} {'':>9} {'':>10} "
          f"{total:23.1f}")
    if cuda:
        print(f"  whole VOC pipeline on one {device}, extrapolated: {total / 60:.2f} h (prepare and check_premise "
              "not extrapolated: they do not scale with the images trained on)")
    else:
        print(f"  ({total / 60:.2f} h: the tiny models' rates, not an estimate for VOC)")
    by_stage = {r["stage"]: r for r in rows}
    for stage, flops in report["flops"].items():
        rate = by_stage[stage]["images_per_s"]
        achieved = f"{flops * rate / 1e12:.3g} TFLOP/s achieved" if rate else "no rate"
        batch = SCALE["paper" if cuda else "tiny"]["seg_batch" if stage == "train_segmenter" else "localizer_batch"]
        print(f"  {stage}: {flops / 1e9:.1f} GFLOP per image per training step ({flops * batch / 1e12:.2f} TFLOP "
              f"per iteration at batch {batch}), {achieved}")
    for r in report["two_gpus"]:
        print(f"  2 GPUs: {r['stage']:<20} {r['images_per_s'] or 0:9.1f} images/s, per rank {r['items_per_rank']}")


if __name__ == "__main__":
    sys.exit(main())
