"""One HTML page that shows what the run did and where its masks are good or bad.

`<run>/report/index.html` (+ the PNGs it shows, in `report/images/`): the stages with
status, time and fingerprint; the mIoU chain seed -> pseudo-mask -> segmenter with
per-class IoU; the background-threshold sweep; galleries of the best, worst and
random images by per-image mIoU (image, class-map heat overlays, pseudo-mask, GT,
segmenter prediction); the pseudo-mask data set's card. `report.compare_runs` adds other
run folders (e.g. the CAM baseline) side by side: their numbers and the same images.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path, save_image, write_text
from pipeline.datasets.masks import read_mask
from pipeline.datasets.prepared import PreparedDataset
from pipeline.errors import ConfigError
from pipeline.log import progress
from pipeline.report.page import document, esc, figure, percent, pre_json, table
from pipeline.evaluation import image_miou
from pipeline.report.chain import chain_folders, load_chain
from pipeline.report.panels import chain_panel
from pipeline.plan import headline_figure
from pipeline.runner import StageContext, StageResult
from pipeline.stage import Input, register_stage
from pipeline.artifacts import (CARD, DEFAULT_REFINEMENT, PREMISE_FIGURE, ClassMaps, PreparedData, Predictions, Premise, PseudoMasks,
                                Report, RunFolder, SeedScores, read_manifest)

HTML = "index.html"
IMAGES = "images"
THIS_RUN = "this run"


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    gallery_size: int = 4  # images in each of: best, worst, random
    tile_height: int = 128
    seed: int = 0  # the random gallery's draw
    compare_runs: str | tuple[str, ...] = ()  # other run folders (one may be a plain string), side by side
    pseudo_masks: str = DEFAULT_REFINEMENT  # the pseudo-mask set whose galleries and card it shows


@register_stage(
    step=12, consumes=(PreparedData, ClassMaps, SeedScores, Input(PseudoMasks, select="report.pseudo_masks"),
                       Input(Premise, optional=True), Input(PseudoMasks, optional=True, every=True),
                       Input(Predictions, optional=True)),
    produces=Report, settings=ReportSettings,
    description="one HTML page that explains every figure: stages, the mIoU chain, the threshold sweep, galleries")
def report(ctx: StageContext) -> StageResult:
    settings = ctx.settings()
    runs = _compared_runs(ctx.run_dir, settings.compare_runs)
    prepared = ctx.input(PreparedData)
    dataset = prepared.load()
    images = ctx.out_dir / IMAGES
    config = '; config: <a href="../config.py">config.py</a>' if (ctx.run_dir / "config.py").is_file() else ""
    body = [f"<h1>Pipeline report: {esc(ctx.run_dir.resolve())}</h1>",
            f'<p class="note">Generated {datetime.now(timezone.utc).isoformat(timespec="seconds")}; '
            f"data set {esc(dataset.name)}, {len(dataset.classes) - 1} classes{config}.</p>"]
    body.append(_stages_section(ctx))
    body.append(_numbers_section(runs, [s.name for s in ctx.plan.chain()], dataset.classes, images))
    body.append(_premise_section(ctx, images))
    body.append(_pseudo_mask_galleries(ctx, runs, dataset, settings, images))
    body.append(_segmenter_galleries(ctx, dataset, settings, images))
    body.append(_card_section(ctx.input(PseudoMasks).root, ctx.out_dir))
    if prepared.skipped:
        body.append("<h3>Items the data set left out</h3>" + pre_json(prepared.skipped))
    write_text(ctx.out_dir / HTML, document(f"Report: {ctx.run_dir.name}", "\n".join(body)))
    return StageResult(artifact=Report(ctx.out_dir, html=HTML), artifacts={"images": len(list(images.glob("*.png")))},
                       info={"html": HTML, "compared_with": [str(p) for p in runs.values()][1:]})


def _compared_runs(run_dir: Path, compare_runs: str | tuple[str, ...]) -> dict[str, Path]:
    """{name: run folder}: this run first, then `report.compare_runs` (a plain string from
    --cfg-options is one folder)."""
    runs = {THIS_RUN: run_dir}
    for folder in (compare_runs,) if isinstance(compare_runs, str) else compare_runs:
        path = Path(folder)
        if not RunFolder(path).has(PseudoMasks):
            raise ConfigError(f"report.compare_runs: {path} is not a run folder with a finished pseudo-mask set")
        if path.name in runs:
            raise ConfigError(f"report.compare_runs: two runs are named '{path.name}'; rename one run folder")
        runs[path.name] = path
    return runs


def _pseudo_mask_galleries(ctx: StageContext, runs: dict[str, Path], dataset: PreparedDataset,
                           settings: ReportSettings, images: Path) -> str:
    """Best, worst and random pseudo-masks by per-image mIoU (without GT: by the card's quality score)."""
    scored = ctx.input(SeedScores).scored_ids(dataset)
    masks = ctx.input(PseudoMasks)
    picks = _galleries(scored, lambda i: read_mask(masks.mask_path(i)), dataset, settings)
    if picks:
        html = ("<h2>Pseudo-masks: best, worst and random images</h2>"
                '<p class="note">Per-image mIoU of the pseudo-mask against GT (classes in either; '
                "ignored pixels left out). Tiles: image, each image-level class map as a heat overlay, "
                "pseudo-mask, GT, and the segmenter's prediction when the image was predicted.</p>")
    else:  # no GT: rank by the GT-free quality score instead
        card = masks.card()
        picks = _ranked({i: q for i, q in card["quality"]["per_image"].items() if q is not None}, settings)
        html = ("<h2>Pseudo-masks: highest, lowest and random quality score</h2>"
                '<p class="note">No image has GT, so images are ranked by the GT-free quality score of the '
                f"data-set card ({esc(card['quality']['score'])}). Tiles: image, each image-level class map "
                "as a heat overlay, pseudo-mask, and the segmenter's prediction when the image was "
                "predicted.</p>")
    ranking = "per-image mIoU against GT" if html.startswith("<h2>Pseudo-masks: best") else "GT-free quality score"
    return (html + _legend(dataset.classes, dataset.palette)
            + _gallery_html(picks, runs, dataset, settings, images, "pseudo", ranking))


def _segmenter_galleries(ctx: StageContext, dataset: PreparedDataset, settings: ReportSettings,
                         images: Path) -> str:
    if not ctx.has_input("predictions"):
        return '<h2>Segmenter</h2><p class="note">The segmenter has not been evaluated for this report.</p>'
    seg = ctx.input(Predictions)
    html = (f"<h2>Segmenter on '{esc(seg.split)}': best, worst and random images</h2>"
            '<p class="note">Per-image mIoU of the prediction against GT.</p>')
    picks = _galleries(dataset.split(seg.split), lambda i: read_mask(seg.mask_path(i)), dataset, settings)
    if picks:
        return html + _gallery_html(picks, {THIS_RUN: ctx.run_dir}, dataset, settings, images, "segmenter",
                                    "per-image mIoU against GT")
    return html + (f'<p class="note">No \'{esc(seg.split)}\' image has GT: the predictions are in '
                   f'{esc(seg.masks_dir.resolve())}, unscored.</p>')


def _legend(classes: list[str], palette) -> str:
    """The colours of the masks' classes, by name (ignored pixels: white), and the heat
    overlays' colour bar (the jet map over a class map's values, 0 to 1)."""
    swatches = [(name, tuple(int(v) for v in palette[k])) for k, name in enumerate(classes)]
    swatches.append(("ignored (255)", (255, 255, 255)))
    items = "".join(f'<span class="swatch"><span style="background: rgb{rgb}"></span>{esc(name)}</span>'
                    for name, rgb in swatches)
    return (f'<p class="legend">Mask colours: {items}</p>'
            '<p class="legend">Class-map heat overlays: 0 <span class="colorbar"></span> 1 '
            "(the map's value, from no evidence of the class to the strongest)</p>")


def _card_section(folder: Path, page_dir: Path) -> str:
    """The pseudo-mask data set in a few lines, with links to its card and README (the
    card lists every image: it grows with the data set, so it is linked, not shown)."""
    card = json.loads((folder / CARD).read_text())
    counts, quality = card.get("counts", {}), card.get("quality", {})
    rows = [("folder", esc(folder.resolve())), ("split", esc(card.get("split"))),
            ("images", esc(counts.get("images"))), ("classes", esc(", ".join(card.get("classes", [])))),
            ("ignored pixels (255), %", percent(card.get("ignore_fraction"))),
            ("GT-free quality score, mean", esc(f"{quality['mean']:.3f}" if quality.get("mean") is not None
                                                 else "-") + f" ({esc(quality.get('score'))})")]
    share = card.get("class_pixel_share") or {}
    if share:
        rows.append(("pixels per class", esc(", ".join(f"{k} {100 * v:.1f}%" for k, v in share.items()))))
    link = lambda name: f'<a href="{esc(os.path.relpath(folder / name, page_dir))}">{name}</a>'  # noqa: E731
    links = link(CARD) + (f" and {link('README.md')}" if (folder / "README.md").is_file() else "")
    return ("<h2>The pseudo-mask data set</h2>" + table(["", ""], rows, raw=True)
            + f'<p class="note">Everything else, per image included: {links}.</p>')


def _premise_section(ctx: StageContext, images: Path) -> str:
    """check_premise's curves and verdict, where it ran with GT."""
    premise = ctx.input(Premise) if ctx.has_input("premise") else None
    if premise is None or not premise.checked:
        return ""
    saved = json.loads(premise.curves_path.read_text())
    images.mkdir(parents=True, exist_ok=True)
    with atomic_path(images / PREMISE_FIGURE) as tmp:
        shutil.copyfile(premise.figure_path, tmp)
    holds = lambda flag: "holds" if flag else "fails"  # noqa: E731
    rows = [(name, f"{v['ce_at_gt']:.2f}", "-" if v.get("ce_near_zero_from_offset") is None else
             f"{v['ce_near_zero_from_offset']:+d} px", f"{v['activation_peak_offset']:+d} px",
             f"{v['activation_rise_to_gt']:+.2f}", holds(v.get("observation_1_partial")), holds(v["observation_1"]),
             holds(v["observation_2"])) for name, v in saved["verdict"].items()]
    return ("<h2>Premise check (the BAS paper's exploratory experiment)</h2>"
            '<p class="note">GT masks eroded (negative offsets) and dilated; the class activation map masked '
            "with them. Observation 1, as the paper states it: the cross-entropy is about 0 (&lt; 0.1) while the "
            "mask covers only part of the object (at a negative offset); the stricter reading: about 0 at the "
            "whole GT mask. Observation 2: "
            "the class activation rises up to the object's boundary (peak within 8 px of it, rise &ge; 0.2 from "
            f"the most eroded mask). Classifier: this run's {esc(saved['method'])} localizer.</p>"
            + table(("class", "CE at GT", "CE about 0 from", "activation peak", "rise to GT",
                     "observation 1 (partial mask, the paper's)", "observation 1 (at the GT mask)", "observation 2"),
                    rows)
            + figure(f"{IMAGES}/{PREMISE_FIGURE}", "CE and class activation against the mask offset"))


def _stages_section(ctx: StageContext) -> str:
    """Each stage's state, time, fingerprint and code digest; the run's total time and package versions."""
    rows, total, versions = [], 0.0, {}
    for stage, st in ctx.plan.statuses():
        if stage.name == ctx.stage.name:
            continue
        m = st.manifest or {}
        total += m.get("duration_s", 0.0)
        versions = m.get("package_versions") or versions
        rows.append([stage.name, f'<span class="{st.state}">{esc(st.state)}</span>',
                     f"{m['duration_s']:.1f} s" if "duration_s" in m else "–", esc(m.get("fingerprint", "–")),
                     esc(m.get("code_digest", "–")), esc(m.get("finished_at", "–")), esc(stage.description)])
    summary = (f'<p class="run">Total time of the stages: <b>{total / 60:.1f} min</b> ({total:.0f} s, every attempt\'s '
               "last run). Package versions: "
               + (esc(", ".join(f"{k} {v}" for k, v in versions.items())) or "–")
               + ". The code digest is a hash of the stage's source files: two runs with the same digest ran the "
               "same code.</p>")
    return ("<h2>Stages</h2>" + table(["stage", "state", "time", "fingerprint", "code digest", "finished", "what"],
                                      rows, raw=True) + summary)


def _numbers_section(runs: dict[str, Path], chain: list[str], classes: list[str], images: Path) -> str:
    """The mIoU chain (one column per stage with a headline figure), per-class IoU, the sweep."""
    numbers = {name: _chain_numbers(path, chain) for name, path in runs.items()}
    labels = {}
    for values in numbers.values():
        labels.update({stage: label for stage, (label, _, _) in values["chain"].items()})
    html = "<h2>Background threshold and mIoU chain</h2>"
    rows = [[name, _threshold_cell(c), percent(c["oracle_seed"])]
            + [percent(c["chain"].get(stage, (None, None))[1]) for stage in labels] for name, c in numbers.items()]
    html += (table(["run", "threshold t", "oracle seed mIoU (%)"] + [f"{labels[s]} (%)" for s in labels], rows)
             + '<p class="note">Seeds and pseudo-masks are scored on the training images with GT, the segmenter on '
               "the split it predicted. The oracle column is the best t of the sweep on GT (the "
               "WSSS literature's optimistic figure); t itself is chosen as its cell says. With IRN's "
               "confident/uncertain split the CRF's masks leave uncertain pixels out of their mIoU; the random walk "
               "labels every pixel. – : no image with GT, or the stage is not in the run."
               "</p>")
    with_classes = [s for s in labels if any(c["chain"].get(s, (None, None, None))[2] for c in numbers.values())]
    if with_classes:
        short = {s: labels[s].replace(" mIoU", "") for s in with_classes}  # 'seed', 'pseudo-mask', ...
        header = ["class"] + [f"{short[s]} ({name})" if len(runs) > 1 else short[s]
                              for name in numbers for s in with_classes]
        rows = [[c] + [percent((numbers[name]["chain"].get(s, (None, None, None))[2] or {}).get(c))
                       for name in numbers for s in with_classes] for c in classes]
        html += "<h3>Per-class IoU (%)</h3>" + table(header, rows)
    html += _rank_correlation_note(numbers)
    named = {(runs[name].resolve().name if name == THIS_RUN else name): c for name, c in numbers.items() if c["curve"]}
    if named:
        from pipeline.report.plots import sweep_plot  # matplotlib: only when the page is made

        sweep_plot({n: c["curve"] for n, c in named.items()}, {n: c["threshold"] for n, c in named.items()},
                   images / "sweep.png")
        html += ("<h3>Background threshold sweep</h3>"
                 + figure(f"{IMAGES}/sweep.png", "seed mIoU against the background threshold t: the dotted line is "
                          "the t the run used, the star the oracle t (the best on GT)"))
    return html


def _rank_correlation_note(numbers: dict) -> str:
    """What the GT-free quality score is worth here: its rank correlation with the true per-image mIoU."""
    rows = [(name, c["rank_correlation"]) for name, c in numbers.items() if c["rank_correlation"] is not None]
    if not rows:
        return ""
    values = ", ".join(f"{v:+.2f} ({esc(name)})" for name, v in rows)
    return (f'<p class="rank">Quality rank correlation: <b>{values}</b>. Spearman\'s rho between the pseudo-masks\' '
            "GT-free quality score and their true per-image mIoU: near +1, the score finds the worst masks without "
            "GT (on a data set without GT it is all there is); near 0, it does not.</p>")


def _threshold_cell(chain: dict) -> str:
    if chain["threshold"] is None:
        return "–"
    how = {"auto": "auto, no GT", "oracle": "oracle, on GT"}.get(chain["rule"], "fixed")
    return f"{chain['threshold']:.3f} ({how})"


def _chain_numbers(run_dir: Path, chain: list[str]) -> dict:
    """A run folder's threshold, sweep and {stage: (label, headline figure, per-class IoU)}
    for the chain's stages it holds."""
    manifests = {stage: read_manifest(run_dir / stage) for stage in chain}
    figures = {stage: figure for stage, m in manifests.items() if m and (figure := headline_figure(m))}
    run = RunFolder(run_dir)
    metrics = run.metrics(SeedScores) if run.has(SeedScores) else {}
    rank = (run.metrics(PseudoMasks) if run.has(PseudoMasks) else {}).get("quality_rank_correlation")
    return {"threshold": metrics.get("threshold"), "curve": metrics.get("curve"),
            "rule": run.get(SeedScores).rule if run.has(SeedScores) else None,
            "oracle_seed": metrics.get("oracle_seed_miou"), "chain": figures, "rank_correlation": rank}


def _galleries(ids: list[str], predicted, dataset: PreparedDataset, settings: ReportSettings) -> dict:
    """{'best' | 'worst' | 'random': [(id, per-image mIoU)]} over the ids with GT."""
    scores = []
    for image_id in progress(ids, "report: per-image mIoU", total=len(ids)):
        gt = dataset.load_mask(image_id)
        if gt is not None:
            scores.append((image_id, image_miou(predicted(image_id), gt, len(dataset.classes))))
    return _ranked(dict(scores), settings)


def _ranked(scores: dict[str, float], settings: ReportSettings) -> dict:
    """{'best' | 'worst' | 'random': [(id, score)]}, NaN scores left out; each image in one
    gallery at most (the worst and the random draw come from what the earlier ones left)."""
    scores = [(i, v) for i, v in scores.items() if v == v]
    if not scores:
        return {}
    ranked = sorted(scores, key=lambda s: (-s[1], s[0]))
    k = settings.gallery_size
    best = ranked[:k]
    worst = [s for s in ranked[::-1] if s not in best][:k]  # no image in two galleries
    rest = [s for s in scores if s not in best and s not in worst]
    rng = np.random.default_rng(settings.seed)
    sample = [rest[i] for i in sorted(rng.choice(len(rest), size=min(k, len(rest)), replace=False))]
    return {name: items for name, items in (("best", best), ("worst", worst), ("random", sample)) if items}


def _gallery_html(picks: dict, runs: dict[str, Path], dataset: PreparedDataset, settings: ReportSettings,
                  images: Path, prefix: str, ranking: str) -> str:
    """Each picked image's panel, and below it the same image in every compared run;
    each gallery's heading says what its images were ranked by."""
    if not picks:
        return '<p class="note">No image to rank.</p>'
    datasets = {name: dataset if name == THIS_RUN else RunFolder(path).get(PreparedData).load()
                for name, path in runs.items()}
    folders = {name: chain_folders(path) for name, path in runs.items()}
    html = []
    for gallery, items in picks.items():
        how = (f"{len(items)} drawn at random (seed {settings.seed}) from the others" if gallery == "random" else
               f"the {len(items)} {'highest' if gallery == 'best' else 'lowest'} by {ranking}")
        html.append(f"<h3>{gallery}: {esc(how)}</h3>")
        for image_id, value in items:
            for name, run_dir in runs.items():
                chain = load_chain(run_dir, datasets[name], image_id, folders[name])
                mask = chain.pseudo_mask if prefix == "pseudo" else chain.prediction
                file = f"{prefix}_{image_id}{'' if name == THIS_RUN else '_' + name}.png"
                save_image(images / file, chain_panel(chain, dataset.palette, settings.tile_height), format="PNG")
                if chain.gt is None:
                    caption = f"quality score {value:.3f}" if name == THIS_RUN else "no GT"
                else:
                    caption = "per-image mIoU " + ("–" if mask is None else
                                                   f"{100 * image_miou(mask, chain.gt, len(dataset.classes)):.1f}%")
                html.append(figure(f"{IMAGES}/{file}", f"{image_id} ({name}): {caption}"))
    return "\n".join(html)
