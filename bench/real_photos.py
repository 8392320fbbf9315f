"""BAS, its CAM baseline, their fusion and DRS on real photos: one table, mean ± sd over seeds.

    python bench/real_photos.py --data-root ../shared/data/coco-real --classes voc20 \
        --seeds 0 1 2 --methods bas cam fused --out outputs/real_voc20

`--data-root`: a COCO 2017 (or 2014) tree. `--classes`: 'voc20' (COCO's names mapped
to VOC's 20; images without any dropped) or 'person' (one class; person-free images
kept as negatives). Each method runs `configs/real_<classes>_<method>.py` with
`train_localizer.seed` set, in `OUT/<method>_seed<k>/`; `fused` is the BAS run's
localizer with the same seed's CAM fused at export (`export_maps.fuse_cam`: the BAS
run's prepare / train_localizer / check_premise are copied in, nothing retrains);
`bas_rw` is the BAS run's localizer again, refined by IRN's random walk
(`configs/real_<classes>_bas_rw.py`: the confident/uncertain CRF split, a boundary net,
the walk; its segmenter trains on the walk's masks), a row with the walk's mIoU.
`prepare` runs once (`OUT/prepare`) and is copied into every run. Finished runs are
reused, so an interrupted bench resumes. The localizer trains on the train split's
image-level labels; seeds and pseudo-masks are scored on the same images (the WSSS
protocol), the segmenter on the val split (only for `--segmenter-seeds`, default all).

Headline mIoU: background and the classes with at least `--min-images` (10) images in
the scored split, fixed before any run; per-class IoU of every class is in
`OUT/results.json`. The premise check (observations 1 / 2 per class) runs as the
config's check_premise stage, and again on large objects only (an object covering at
least `--large-share` of its image, as the paper's CUB birds do).
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

from bench.seeds import commit, machine  # noqa: E402
from pipeline.artifacts import (LocalizerWeights, Predictions, PreparedData, Premise, PseudoMasks, RunFolder,  # noqa: E402
                                SeedScores)
from pipeline.versions import package_versions  # noqa: E402

MAP_STAGES = ["prepare", "train_localizer", "check_premise", "export_maps", "evaluate_maps", "refine_masks"]
SEGMENTER_STAGES = ["train_segmenter", "evaluate_segmenter"]
SHARED_WITH_FUSED = ("prepare", "train_localizer", "check_premise")
BORROWS_BAS = ("fused", "bas_rw")  # methods that reuse the BAS run's localizer
WALK_STAGES = ["train_boundary", "random_walk"]


def run(config: Path, folder: Path, stages: list[str], options: list[str], log) -> None:
    cmd = [sys.executable, "run_pipeline.py", "--config", str(config), "--work-dir", str(folder),
           "--stage", ",".join(stages), "--cfg-options", *options]
    t0 = time.time()
    with open(folder.parent / f"{folder.name}.log", "a") as out:
        result = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{folder}: the run failed (exit {result.returncode}); see {folder.parent / folder.name}.log")
    log(f"  {folder.name}: {(time.time() - t0) / 60:.1f} min wall-clock")


def manifest(folder: Path, stage: str) -> dict:
    return RunFolder(folder).stage_record(stage)


def images_per_class(prepare: Path, split: str) -> dict[str, int]:
    dataset = json.loads((prepare / "dataset.json").read_text())
    labels = json.loads((prepare / "labels.json").read_text())
    ids = (prepare / dataset["splits"][split]).read_text().split()
    counts = np.bincount([c for i in ids for c in labels[i]], minlength=len(dataset["classes"]))
    return dict(zip(dataset["classes"][1:], counts[1:].tolist()))


def headline(per_class: dict, counts: dict[str, int], min_images: int) -> float | None:
    """mIoU (%) over background and the classes with >= min_images images."""
    keep = ["background"] + [c for c, n in counts.items() if n >= min_images]
    values = [per_class.get(c) for c in keep]
    values = [v for v in values if v is not None and v == v]
    return 100 * float(np.mean(values)) if values else None


def large_object_premise(folder: Path, share: float) -> dict:
    """check_premise's verdict on the run's localizer, objects covering >= share of their image."""
    from pipeline.config import load_config, section_to_dataclass
    from pipeline.models import load_trained_localizer
    from pipeline.premise import premise_curves, premise_ids, verdict
    from pipeline.premise import PremiseSettings

    settings = section_to_dataclass(PremiseSettings, dict(load_config(folder / "config.py").get("check_premise", {})),
                                    "check_premise")
    run = RunFolder(folder)
    dataset = run.get(PreparedData).load()
    ids, _ = premise_ids(dataset, "train", settings.images, share)
    model, _ = load_trained_localizer(run.get(LocalizerWeights).model_path)
    offsets = list(range(settings.offsets[0], settings.offsets[1] + 1, settings.step))
    curves = premise_curves(model, dataset, ids, offsets, settings.scale, share)
    return {"images": len(ids), "verdict": verdict(offsets, curves)}


def premise_summary(verdicts: dict) -> dict:
    return {"obs1": sum(v["observation_1"] for v in verdicts.values()),
            "obs1_partial": sum(v.get("observation_1_partial", False) for v in verdicts.values()),
            "obs2": sum(v["observation_2"] for v in verdicts.values()), "classes": len(verdicts),
            "mean_ce_at_gt": float(np.mean([v["ce_at_gt"] for v in verdicts.values()])) if verdicts else None,
            "mean_peak_px": float(np.mean([v["activation_peak_offset"] for v in verdicts.values()]))
            if verdicts else None}


def collect(folder: Path, counts_train: dict, counts_val: dict, min_images: int, large_share: float,
            premise_from: Path) -> dict:
    run = RunFolder(folder)
    seeds, crf = run.metrics(SeedScores), run.metrics(PseudoMasks, "refine_masks")
    walk = run.metrics(PseudoMasks, "random_walk") if "random_walk" in run.producers(PseudoMasks) else {}
    seg = run.metrics(Predictions) if run.has(Predictions) else {}
    premise = RunFolder(premise_from).metrics(Premise).get("verdict", {})
    large = large_object_premise(premise_from, large_share)
    return {
        "seed_miou": headline(seeds["per_class_iou"], counts_train, min_images),
        "oracle_seed_miou": headline(seeds["oracle_per_class_iou"], counts_train, min_images),
        "crf_miou": headline(crf["per_class_iou"], counts_train, min_images),
        "walk_miou": headline(walk["per_class_iou"], counts_train, min_images) if walk else None,
        "walk_minutes": sum(manifest(folder, st).get("duration_s", 0.0) for st in WALK_STAGES) / 60 if walk else None,
        "segmenter_miou": headline(seg["per_class_iou"], counts_val, min_images) if seg else None,
        "seed_miou_all_classes": 100 * seeds["seed_miou"], "crf_miou_all_classes": 100 * crf["miou"],
        "segmenter_miou_all_classes": 100 * seg["miou"] if seg else None,
        "threshold": seeds["threshold"], "oracle_threshold": seeds["oracle_threshold"],
        "quality_rank_correlation": crf.get("quality_rank_correlation"),
        "collapsed_classes": seeds.get("collapsed_classes", []),
        "per_class_iou": {"seed": seeds["per_class_iou"], "crf": crf["per_class_iou"],
                          "walk": walk.get("per_class_iou"),
                          "segmenter": seg.get("per_class_iou")},
        "premise": premise_summary(premise), "premise_verdict": premise,
        "premise_large": premise_summary(large["verdict"]) | {"images": large["images"]},
        "premise_large_verdict": large["verdict"],
    }


def aggregate(rows: list[dict]) -> dict:
    """Per-seed rows -> {key: [value per seed]}; the premise summaries as {field: [per seed]}."""
    out = {key: [r[key] for r in rows] for key in rows[0]}
    for key in ("premise", "premise_large"):
        out[key] = {field: [r[key][field] for r in rows] for field in rows[0][key]}
    out.update(premise_obs1=out["premise"]["obs1"], premise_obs2=out["premise"]["obs2"],
               premise_classes=out["premise"]["classes"])
    return out


def run_point(args, out: Path, shared: Path, seeds: list[int], seg_seeds: list[int], epochs: int | None,
              options: list[str], config, counts_train: dict, counts_val: dict, log, save) -> dict:
    """Every method and seed at one training schedule (`epochs`; None: the configs' own);
    `save(methods, seeds_done)` after each seed, so a stopped bench keeps what finished."""
    rows_by_method: dict[str, list[dict]] = {}
    methods: dict = {}
    schedule = [] if epochs is None else [f"train_localizer.epochs={epochs}"]
    for seed in seeds:
        folders = {}
        for method in args.methods:
            stages = MAP_STAGES + (WALK_STAGES if method == "bas_rw" else []) + \
                (SEGMENTER_STAGES if seed in seg_seeds else [])
            folder = folders[method] = out / f"{method}_seed{seed}"
            folder.mkdir(exist_ok=True)
            copied = SHARED_WITH_FUSED if method in BORROWS_BAS else ("prepare",)
            source = folders["bas"] if method in BORROWS_BAS else shared
            for stage in copied:
                if not manifest(folder, stage):
                    shutil.rmtree(folder / stage, ignore_errors=True)
                    shutil.copytree(source / stage, folder / stage, symlinks=True)
            extra = [f"train_localizer.seed={seed}", *schedule]
            if method == "fused":
                extra.append(f"export_maps.fuse_cam={folders['cam']}")
            run(config(method), folder, stages, options + extra, log)
            row = collect(folder, counts_train, counts_val, args.min_images, args.large_share,
                          folders["bas"] if method in BORROWS_BAS else folder)
            # the stages' own time from their manifests (a reused run costs nothing twice)
            row["minutes"] = sum(manifest(folder, st).get("duration_s", 0.0) for st in stages
                                 if st not in copied) / 60
            row["steps"] = manifest(folder, "train_localizer").get("artifacts", {}).get("steps")
            rows_by_method.setdefault(method, []).append(row)
            seg = "-" if row["segmenter_miou"] is None else f"{row['segmenter_miou']:.1f}"
            seg += "" if row["walk_miou"] is None else f", walk {row['walk_miou']:.1f} ({row['walk_minutes']:.1f} min)"
            log(f"  {'' if epochs is None else f'{epochs} epochs, '}seed {seed} {method:<6} seed mIoU "
                f"{row['seed_miou']:.1f} (oracle {row['oracle_seed_miou']:.1f}, t {row['threshold']:.2f}), "
                f"CRF {row['crf_miou']:.1f}, segmenter {seg}, collapsed {row['collapsed_classes']}, premise "
                f"{row['premise']['obs1']}/{row['premise']['obs2']} of {row['premise']['classes']}, large objects "
                f"{row['premise_large']['obs1']}/{row['premise_large']['obs2']} of {row['premise_large']['classes']}")
        methods = {m: aggregate(rows) for m, rows in rows_by_method.items()}
        save(methods, seeds[:seeds.index(seed) + 1])
    return methods


def cell(values, digits=1) -> str:
    values = np.array([v for v in values if v is not None], dtype=np.float64)
    if not len(values):
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (1 seed)"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def table(results: dict) -> str:
    lines = ["| method | seed mIoU, GT-free t | oracle seed mIoU (t on GT) | CRF pseudo-mask mIoU | CRF gain "
             "| walk pseudo-mask mIoU | walk gain over seeds | walk minutes "
             "| segmenter val mIoU | premise obs. 1 / 2 (classes) | large objects: obs. 1 / 2 (classes) "
             "| quality rank corr. | minutes |", "|" + "---|" * 13]
    for name, rows in results["methods"].items():
        p, q = rows["premise"], rows["premise_large"]
        lines.append(
            f"| {name} | {cell(rows['seed_miou'])} | {cell(rows['oracle_seed_miou'])} | {cell(rows['crf_miou'])} "
            f"| {cell([c - s for c, s in zip(rows['crf_miou'], rows['seed_miou'])])} "
            f"| {cell(rows.get('walk_miou', [None]))} "
            f"| {cell([None if w is None else w - s for w, s in zip(rows.get('walk_miou', []), rows['seed_miou'])])} "
            f"| {cell(rows.get('walk_minutes', [None]))} "
            f"| {cell(rows['segmenter_miou'])} "
            f"| {'; '.join(f'{a}/{b} ({n})' for a, b, n in zip(p['obs1'], p['obs2'], p['classes']))} "
            f"| {'; '.join(f'{a}/{b} ({n})' for a, b, n in zip(q['obs1'], q['obs2'], q['classes']))} "
            f"| {cell(rows['quality_rank_correlation'], 2)} | {cell(rows['minutes'])} |")
    return "\n".join(lines)


def curve_table(results: dict) -> str:
    """One row per (schedule, method): the learning curve."""
    lines = ["| epochs (steps) | method | seeds | seed mIoU, GT-free t | oracle seed mIoU (t on GT) | t (oracle t) "
             "| CRF pseudo-mask mIoU | CRF gain | collapsed classes | premise obs. 1 / 2 (classes) "
             "| large objects: obs. 1 / 2 (classes) | minutes |", "|" + "---|" * 12]
    for epochs, point in sorted(results["curve"].items(), key=lambda item: int(item[0])):
        for name, rows in point["methods"].items():
            p, q = rows["premise"], rows["premise_large"]
            steps = "/".join(str(s) for s in sorted(set(rows.get("steps", [None]))))
            lines.append(
                f"| {epochs} ({steps}) | {name} | {len(point['seeds'])} | {cell(rows['seed_miou'])} "
                f"| {cell(rows['oracle_seed_miou'])} | {cell(rows['threshold'], 2)} ({cell(rows['oracle_threshold'], 2)}) "
                f"| {cell(rows['crf_miou'])} | {cell([c - s for c, s in zip(rows['crf_miou'], rows['seed_miou'])])} "
                f"| {'; '.join(', '.join(c) or 'none' for c in rows['collapsed_classes'])} "
                f"| {'; '.join(f'{a}/{b} ({n})' for a, b, n in zip(p['obs1'], p['obs2'], p['classes']))} "
                f"| {'; '.join(f'{a}/{b} ({n})' for a, b, n in zip(q['obs1'], q['obs2'], q['classes']))} "
                f"| {cell(rows['minutes'])} |")
    return "\n".join(lines)


def curve_plot(results: dict, path: Path) -> None:
    """Seed and CRF pseudo-mask mIoU against the localizer's steps, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    methods = sorted({m for point in results["curve"].values() for m in point["methods"]})
    for k, method in enumerate(methods):
        points = sorted((int(e), p["methods"][method]) for e, p in results["curve"].items() if method in p["methods"])
        steps = [np.mean([s for s in rows.get("steps", [None]) if s is not None] or [np.nan]) for _, rows in points]
        for key, style in (("seed_miou", "-o"), ("crf_miou", "--s")):
            values = [np.mean([v for v in rows[key] if v is not None]) for _, rows in points]
            ax.plot(steps, values, style, color=f"C{k}", label=f"{method}: {'seeds' if key == 'seed_miou' else 'CRF'}")
    ax.set_xlabel("localizer steps (batch 16)")
    ax.set_ylabel(f"mIoU (%), {len(results['headline_classes'])} headline classes")
    ax.set_title(f"Real photos, {results['classes']}: learning curve (seed 0)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root")
    parser.add_argument("--print-only", action="store_true",
                        help="print the table of OUT/results.json (a stopped or finished bench) and exit")
    parser.add_argument("--plot", type=Path, default=None, help="with a curve: also draw it into this PNG")
    parser.add_argument("--classes", choices=("voc20", "person"), default="voc20")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["bas", "cam", "fused"],
                        choices=("bas", "cam", "fused", "drs", "bas_rw"))
    parser.add_argument("--segmenter-seeds", type=int, nargs="*", default=None,
                        help="seeds whose runs also train and score the segmenter (default: all)")
    parser.add_argument("--epochs", type=int, nargs="+", default=None,
                        help="a learning curve: one point per localizer schedule (train_localizer.epochs), "
                             "each in OUT/epochs<E>/; seed 0 only except at --seeds-at (default: the configs' "
                             "schedule, every seed)")
    parser.add_argument("--seeds-at", type=int, default=None,
                        help="the curve's point (epochs) that runs every --seeds seed")
    parser.add_argument("--min-images", type=int, default=10)
    parser.add_argument("--large-share", type=float, default=0.3)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cfg-options", nargs="*", default=[])
    args = parser.parse_args()
    if args.print_only:
        results = json.loads((args.out / "results.json").read_text())
        for epochs, point in results.get("curve", {}).items():  # results of a bench that did not record steps
            for method, rows in point["methods"].items():
                if None in rows.get("steps", [None]):
                    rows["steps"] = [manifest(args.out / f"epochs{epochs}" / f"{method}_seed{seed}",
                                              "train_localizer").get("artifacts", {}).get("steps")
                                     for seed in point["seeds"]]
        seeds = results.get("seeds") or sorted({k for point in results.get("curve", {}).values() for k in point["seeds"]})
        print(f"classes {results['classes']}, seeds {seeds}, {results['minutes']:.0f} min; "
              f"versions: {results['versions']}")
        print(curve_table(results) if "curve" in results else table(results))
        if args.plot and "curve" in results:
            curve_plot(results, args.plot)
        return 0
    if args.data_root is None:
        raise SystemExit("--data-root is required (a COCO 2017 or 2014 tree)")
    if "fused" in args.methods and not {"bas", "cam"} <= set(args.methods):
        raise SystemExit("--methods fused needs bas and cam too (it fuses their runs)")
    if "bas_rw" in args.methods and "bas" not in args.methods:
        raise SystemExit("--methods bas_rw needs bas too (it walks from the BAS run's localizer)")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    seg_seeds = args.seeds if args.segmenter_seeds is None else args.segmenter_seeds
    lines: list[str] = []

    def log(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    config = lambda method: ROOT / "configs" / f"real_{args.classes}_{'bas' if method == 'fused' else method}.py"
    options = [f"dataset.data_root={Path(args.data_root).resolve()}", *args.cfg_options]
    shared = out / "prepare"
    t0 = time.time()
    run(config("bas"), shared, ["prepare"], options, log)
    counts_train = images_per_class(shared / "prepare", "train")
    counts_val = images_per_class(shared / "prepare", "val")
    log(f"images per class, train: {counts_train}\nval: {counts_val}")
    results: dict = {"classes": args.classes, "min_images": args.min_images,
                     "headline_classes": ["background"] + [c for c, n in counts_train.items() if n >= args.min_images],
                     "methods": {}, "versions": package_versions(),
                     "machine": machine(), "commit": commit(),
                     "command": "python bench/real_photos.py " + " ".join(sys.argv[1:])}
    points = args.epochs or [None]
    for epochs in points:
        point_out = out if epochs is None else out / f"epochs{epochs}"
        point_out.mkdir(exist_ok=True)
        seeds = args.seeds if epochs is None or epochs == args.seeds_at else args.seeds[:1]

        def save(methods: dict, seeds_done: list[int], epochs=epochs) -> None:
            if epochs is None:
                results.update(methods=methods, seeds=seeds_done)
            else:
                results.setdefault("curve", {})[str(epochs)] = {"seeds": seeds_done, "methods": methods}
            results["minutes"] = (time.time() - t0) / 60
            results["table"] = (curve_table(results) if "curve" in results else table(results)).splitlines()
            (out / "results.json").write_text(json.dumps(results, indent=1))

        run_point(args, point_out, shared, seeds, seg_seeds, epochs, options, config, counts_train, counts_val,
                  log, save)
    print()
    print(f"real photos ({args.data_root}, classes {args.classes}), seeds {args.seeds}; mIoU in % over "
          f"{', '.join(results['headline_classes'])}; mean ± sd over seeds; {results['minutes']:.0f} min in all")
    print(f"versions: {results['versions']}")
    print(curve_table(results) if "curve" in results else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
