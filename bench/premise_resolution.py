"""Is the premise check limited by the classifier's resolution? BAS and CAM trained at
several input scales and output strides, each checked and scored.

    python bench/premise_resolution.py                          # the default config: 1x OS16, 2x OS16, 2x OS8
    python bench/premise_resolution.py --variants 1:16 2:8 --work-dir outputs/premise_res

A variant `s:os` trains the default's localizer on images resized by s (the long side
drawn from s x the default's `resize_long`, crops of s x its `crop`), with output
stride os; check_premise and export_maps see the images at the same scale. For each
variant and method it runs prepare .. refine_masks plus check_premise and prints: the
classes where observations 1 and 2 hold, the mean CE at the GT mask, the mean offset of
the activation's peak, the seed mIoU (GT-free t) and the pseudo-mask mIoU. Slow on a
CPU (2x OS8 is ~8x the default's compute); minutes on a GPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.artifacts import LocalizerWeights, Premise, PseudoMasks, RunFolder, SeedScores  # noqa: E402

STAGES = "prepare,train_localizer,check_premise,export_maps,evaluate_maps,refine_masks"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/default.py")
    parser.add_argument("--variants", nargs="+", default=["1:16", "2:16", "2:8"], help="scale:output_stride")
    parser.add_argument("--methods", nargs="+", default=["bas", "cam"])
    parser.add_argument("--work-dir", type=Path, default=ROOT / "outputs" / "premise_resolution")
    parser.add_argument("--cfg-options", nargs="*", default=[])
    args = parser.parse_args()

    from pipeline.config import load_config
    from pipeline.config import settings_of

    cfg = load_config(str(ROOT / args.config))
    localizer = settings_of(cfg, "train_localizer")
    base_long, base_crop = localizer.resize_long, localizer.crop
    base_scales = settings_of(cfg, "export_maps").scales
    rows, prepared = [], None
    for variant in args.variants:
        scale, stride = float(variant.split(":")[0]), int(variant.split(":")[1])
        options = [f"train_localizer.resize_long=({round(scale * base_long[0])},{round(scale * base_long[1])})",
                   f"train_localizer.crop={round(scale * base_crop)}", f"localizer.backbone.output_stride={stride}",
                   f"check_premise.scale={scale}",
                   "export_maps.scales=(" + ",".join(f"{scale * s:g}" for s in base_scales) + ",)"]
        for method in args.methods:
            folder = args.work_dir / f"{method}_x{scale:g}_os{stride}"
            cmd = [sys.executable, "run_pipeline.py", "--config", args.config, "--work-dir", str(folder),
                   "--stage", STAGES, "--cfg-options", f"localizer.type={method}", *options, *args.cfg_options]
            t0 = time.time()
            if prepared is not None and not (folder / "prepare").exists():  # one data set for every run
                shutil.copytree(prepared, folder / "prepare")
            result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"{folder}: the run failed\n{result.stderr[-2000:]}")
            prepared = prepared or folder / "prepare"
            done = RunFolder(folder)
            verdicts = json.loads(done.get(Premise).curves_path.read_text())["verdict"].values()
            seeds, masks = done.metrics(SeedScores), done.metrics(PseudoMasks)
            train = done.stage_record(done.producers(LocalizerWeights)[0])
            rows.append((f"{scale:g}x OS{stride}", method.upper(), sum(v["observation_1"] for v in verdicts),
                         sum(v["observation_2"] for v in verdicts), len(verdicts),
                         np.mean([v["ce_at_gt"] for v in verdicts]),
                         np.mean([v["activation_peak_offset"] for v in verdicts]),
                         100 * seeds["seed_miou"], 100 * masks["miou"], train["duration_s"], time.time() - t0))
            print(f"  {folder.name}: {time.time() - t0:.0f} s", flush=True)
    print(f"\n{args.config}: premise check and mIoU per input scale and output stride\n")
    print("| variant | method | obs. 1 holds | obs. 2 holds | mean CE at GT | mean activation peak | seed mIoU "
          "| pseudo-mask mIoU | localizer s | run s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for v, m, o1, o2, n, ce, peak, seed, pseudo, train_s, run_s in rows:
        print(f"| {v} | {m} | {o1}/{n} | {o2}/{n} | {ce:.2f} | {peak:+.0f} px | {seed:.1f} | {pseudo:.1f} "
              f"| {train_s:.0f} | {run_s:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
