"""BAS against its CAM baseline over several training seeds: seeds, pseudo-masks, and their spread.

    python bench/seeds.py                                 # the default config, seeds 0 1 2
    python bench/seeds.py --config configs/x.py --seeds 0 1 2 3 --work-dir outputs/seeds
    python bench/seeds.py --methods bas --segmenter --work-dir outputs/default_seeds   # the default run, 3 seeds
    python bench/seeds.py --methods bas --segmenter --isa native avx2 --json docs/figures/default_seeds.json

For each seed it runs the config up to refine_masks twice, as BAS and as the CAM
baseline (`localizer.type='cam'`), with `train_localizer.seed` set (the data set stays
the same), in `<work-dir>/<method>_seed<k>`; finished runs are reused. A third row,
"BAS + CAM", fuses each seed's BAS maps with the same seed's CAM maps as export_maps
does (`pipeline.maps.fuse_maps`) and scores them
with the same rules (with `--methods bas cam`). `--segmenter` runs the whole config
(train_segmenter and evaluate_segmenter too) and adds the segmenter's val mIoU. It prints, per method, the mean and standard deviation over seeds
of: the seed mIoU at the GT-free threshold, the oracle seed mIoU (best t on GT) and the
gap, the pseudo-mask mIoU after the CRF and its gain over the seeds, and the rank
correlation of the GT-free quality score with per-image mIoU. `--isa native avx2` runs
each seed twice: as the machine runs it, and with x86 kernels limited to AVX2
(`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`, what an AVX2-only CPU runs), one row
each. `--json` writes every run's figures and the summary rows, with the machine and
package versions (the README's tables are made from such files: bench/readme_tables.py).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = "prepare,train_localizer,check_premise,export_maps,evaluate_maps,refine_masks"


# How a run limits x86 kernels to an instruction set: ATen's vectorised CPU kernels and oneDNN's.
ISA_ENV = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def run(config: str, work: Path, method: str, seed: int, extra: list[str], stages: str = STAGES,
        isa: str = "native") -> Path:
    folder = work / (f"{method}_seed{seed}" + ("" if isa == "native" else f"_{isa}"))
    cmd = [sys.executable, "run_pipeline.py", "--config", config, "--work-dir", str(folder), "--stage", stages,
           "--cfg-options", f"localizer.type={method}", f"train_localizer.seed={seed}", *extra]
    t0 = time.time()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **ISA_ENV[isa]})
    if result.returncode != 0:
        raise SystemExit(f"{folder}: the run failed\n{result.stderr[-2000:]}")
    print(f"  {folder.name}: {time.time() - t0:.0f} s", flush=True)
    return folder


def metrics(folder: Path) -> dict:
    from pipeline.artifacts import Predictions, PseudoMasks, RunFolder, SeedScores

    run = RunFolder(folder)
    seeds, masks = run.metrics(SeedScores), run.metrics(PseudoMasks)
    return {"seed": seeds["seed_miou"], "t": seeds["threshold"], "oracle": seeds["oracle_seed_miou"],
            "oracle_t": seeds["oracle_threshold"], "gap": seeds["gap_to_oracle"], "pseudo": masks["miou"],
            "crf_gain": masks["gain_over_seeds"], "rank": masks.get("quality_rank_correlation"),
            "segmenter": run.metrics(Predictions)["miou"] if run.has(Predictions) else None}


def fused_metrics(bas: Path, cam: Path) -> dict:
    """BAS + CAM maps fused as export_maps does, scored as evaluate_maps and refine_masks do."""
    from pipeline.artifacts import ClassMaps, PreparedData, RunFolder
    from pipeline.config import load_config
    from pipeline.evaluation import MaskScore, SeedSweep, image_miou
    from pipeline.pseudo_masks import ConfidentSplit, PseudoMaskRecipe, agreement, pseudo_mask, seed_mask
    import torch
    from scipy.stats import spearmanr
    from pipeline.map_statistics import HISTOGRAM_BINS, otsu_threshold, strongest_value_histogram
    from pipeline.maps import fuse_maps
    from pipeline.config import settings_of

    dataset = RunFolder(bas).get(PreparedData).load()
    refine = settings_of(load_config(str(bas / "config.py")), "refine_masks")
    bas_maps, cam_maps = RunFolder(bas).get(ClassMaps), RunFolder(cam).get(ClassMaps)
    ids = dataset.split(bas_maps.split)

    def fused(image_id):
        (first, classes), (second, _) = bas_maps.read_image(image_id), cam_maps.read_image(image_id)
        return fuse_maps(torch.from_numpy(first), torch.from_numpy(second)).numpy(), classes

    histogram = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    for image_id in ids:
        histogram += strongest_value_histogram(*fused(image_id))
    t = otsu_threshold(histogram)
    grid = np.array(sorted(set(np.round(np.arange(0.05, 0.95 + 0.005, 0.01), 6).tolist()) | {t}))
    sweep = SeedSweep(len(dataset.classes), grid)
    recipe = PseudoMaskRecipe(background="fixed", threshold=t, alpha=4.0,
                              crf=refine.crf, confident=ConfidentSplit())
    score, quality, per_image = MaskScore(len(dataset.classes)), [], []
    for image_id in ids:
        gt = dataset.load_mask(image_id)
        if gt is None:
            continue
        maps, classes = fused(image_id)
        sweep.add(maps, classes, gt)
        mask = pseudo_mask(np.array(dataset.load_image(image_id)), maps, classes, recipe)
        score.add(mask, gt)
        quality.append(agreement(seed_mask(maps, classes, recipe), mask))
        per_image.append(image_miou(mask, gt, len(dataset.classes)))
    curve = sweep.miou_curve()
    chosen, best = int(np.flatnonzero(np.isclose(grid, t))[0]), int(np.nanargmax(curve))
    pseudo = score.summary(dataset.classes)["miou"]
    ok = [(q, m) for q, m in zip(quality, per_image) if q == q and m == m]
    return {"seed": curve[chosen], "t": t, "oracle": curve[best], "oracle_t": grid[best],
            "gap": curve[best] - curve[chosen], "pseudo": pseudo, "crf_gain": pseudo - curve[chosen],
            "rank": float(spearmanr(*zip(*ok)).statistic), "segmenter": None}


def agreement(a: Path, b: Path, stage: str, folder: str) -> float | None:
    """The share of pixels two runs label alike in one stage's PNGs (GT-free): how far an
    instruction set moves what a stage outputs."""
    from pipeline.datasets.masks import read_mask

    left = sorted((a / stage / folder).glob("*.png"))
    if not left or not (b / stage / folder).is_dir():
        return None
    same = total = 0
    for path in left:
        x, y = read_mask(path), read_mask(b / stage / folder / path.name)
        same, total = same + int((x == y).sum()), total + x.size
    return same / total


def cell(rows: list[dict], key: str, scale=100, digits=1) -> str:
    """'mean ± sd' (sample sd over seeds) of one figure, in `scale` units."""
    values = np.array([r[key] for r in rows if r[key] is not None], dtype=np.float64) * scale
    if not len(values):
        return "-"
    if len(values) == 1:  # one run: no spread to state
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def summarise(name: str, rows: list[dict]) -> str:
    cell = functools.partial(globals()["cell"], rows)

    return (f"| {name} | {cell('seed')} | {cell('t', 1, 2)} | {cell('oracle')} | {cell('gap')} | {cell('pseudo')} "
            f"| {cell('crf_gain')} | {cell('rank', 1, 2)} | {cell('segmenter')} |")


def machine() -> str:
    """The CPU's model name and its widest vector extension, and the core count."""
    flags = model = ""
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            if key.strip() == "flags" and not flags:
                flags = value
    isa = "AVX-512" if "avx512f" in flags.split() else "AVX2" if "avx2" in flags.split() else "no AVX2"
    return f"{model or platform.processor() or platform.machine()} with {isa}, {os.cpu_count()} cores"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/default.py")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work-dir", type=Path, default=ROOT / "outputs" / "seeds")
    parser.add_argument("--cfg-options", nargs="*", default=[])
    parser.add_argument("--methods", nargs="+", default=["bas", "cam"], choices=("bas", "cam"))
    parser.add_argument("--segmenter", action="store_true", help="also train and score the segmenter")
    parser.add_argument("--isa", nargs="+", default=["native"], choices=tuple(ISA_ENV),
                        help="instruction sets to run each seed under (a row each)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    stages = STAGES + (",train_segmenter,evaluate_segmenter" if args.segmenter else "")
    per_method: dict[str, list[dict]] = {}
    lines = []
    for seed in args.seeds:
        for isa in args.isa:
            runs = {m: run(args.config, args.work_dir, m, seed, args.cfg_options, stages, isa) for m in args.methods}
            suffix = "" if args.isa == ["native"] else f" ({isa})"
            rows = [(m.upper() + suffix, metrics(folder)) for m, folder in runs.items()]
            if len(runs) == 2:
                rows.append(("BAS + CAM (fused)" + suffix, fused_metrics(runs["bas"], runs["cam"])))
            for name, m in rows:
                per_method.setdefault(name, []).append(dict(m, seed_index=seed))
                lines.append(f"  seed {seed} {name:<18} seed mIoU {100 * m['seed']:5.1f}% (t {m['t']:.2f}; oracle "
                             f"{100 * m['oracle']:5.1f}% at {m['oracle_t']:.2f}), pseudo-mask {100 * m['pseudo']:5.1f}% "
                             f"(CRF {100 * m['crf_gain']:+.1f}), quality rank corr. {m['rank']:+.2f}"
                             + ("" if m["segmenter"] is None else f", segmenter val mIoU {100 * m['segmenter']:.1f}%"))
            if isa != "native" and "native" in args.isa:
                for method in runs:
                    native = args.work_dir / f"{method}_seed{seed}"
                    lines.append(f"  seed {seed} {method.upper()} pixels labelled alike, native vs {isa} (GT-free): "
                                 f"pseudo-masks {100 * agreement(native, runs[method], 'refine_masks', 'pseudo_masks/SegmentationClass'):.1f}%"
                                 + ("" if not args.segmenter else f", segmenter predictions "
                                    f"{100 * agreement(native, runs[method], 'evaluate_segmenter', 'predictions'):.1f}%"))
    print("\n".join(lines))
    from pipeline.versions import package_versions

    versions = package_versions()
    print(f"\n{args.config}, seeds {args.seeds} (mean ± std over seeds; mIoU in %, seeds and pseudo-masks on the "
          f"training images with GT, the segmenter on val); {machine()}; versions: {versions}\n")
    print(TABLE_HEADER)
    for name, rows in per_method.items():
        print(summarise(name, rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": "python bench/seeds.py " + " ".join(sys.argv[1:]), "config": args.config, "seeds": args.seeds,
            "machine": machine(), "package_versions": versions, "commit": commit(),
            "runs": per_method, "lines": lines, "table": [TABLE_HEADER] + [summarise(n, r) for n, r in per_method.items()]},
            indent=1, default=float))
    return 0


TABLE_HEADER = ("| method | seed mIoU, GT-free t | t | oracle seed mIoU (t on GT) | gap to oracle | pseudo-mask mIoU (CRF) "
                "| CRF gain | quality rank corr. | segmenter val mIoU |\n|---|---|---|---|---|---|---|---|---|")


def commit() -> str | None:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return (result.stdout.strip() + ("+changes" if dirty else "")) if result.returncode == 0 else None


if __name__ == "__main__":
    sys.exit(main())
