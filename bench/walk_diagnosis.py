"""Why does (or doesn't) IRN's random walk help on a run? Its two inputs, measured apart.

    python bench/walk_diagnosis.py outputs/real_voc20_bas_rw [--images 100] [--json out.json]

Needs a run folder with `random_walk` done (a `*_rw` config). On the photos with GT it
measures, all against GT (a diagnosis, not a setting chooser):

1. **The labels the boundary net learned from** (the CRF's confident/uncertain split):
   the share of pixels labelled foreground, background and uncertain, how many of each
   are right, and how much of the GT objects' area the confident foreground covers.
2. **The boundary map** (stride 4, with its flip, as the walk computes it): how well it
   ranks GT class edges above other pixels (ROC AUC; 0.5 = no information), and the
   same for its own training labels' edges (what it was taught).
3. **The walk with three boundaries** on the same maps and threshold: the learned one
   (the run's walk), none (a plain diffusion: what the walk adds without edges) and
   GT's own class edges (an oracle: what the walk can reach with perfect edges). Seeds
   and the CRF's set beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.artifacts import BoundaryWeights, ClassMaps, PreparedData, PseudoMasks, RunFolder, SeedScores  # noqa: E402
from pipeline.crf import CRFParams  # noqa: E402
from pipeline.datasets.masks import IGNORE_INDEX, read_mask  # noqa: E402
from pipeline.evaluation import MaskScore  # noqa: E402
from pipeline.log import progress  # noqa: E402
from pipeline.pseudo_masks import ConfidentSplit, PseudoMaskRecipe, seed_mask  # noqa: E402


def class_edges(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label (255 on either side: no edge)."""
    edges = np.zeros(labels.shape, dtype=bool)
    for a, b, out in ((labels[:, :-1], labels[:, 1:], edges[:, :-1]), (labels[:-1], labels[1:], edges[:-1])):
        out |= (a != b) & (a != IGNORE_INDEX) & (b != IGNORE_INDEX)
    return edges


def on_grid(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to the boundary's stride-4 grid."""
    rows = (np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0]
    cols = (np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1]
    return labels[rows.astype(int)[:, None], cols.astype(int)[None, :]]


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC: the chance that a positive pixel scores above a negative one."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class Tally:
    """Pixel counts of the confident/uncertain labels against GT, and the boundary's scores."""

    def __init__(self):
        self.counts = dict(fg=0, fg_right=0, bg=0, bg_right=0, uncertain=0, gt_fg=0, gt_fg_covered=0)
        self.boundary, self.gt_edge, self.label_edge = [], [], []

    def add_labels(self, labels: np.ndarray, gt: np.ndarray) -> None:
        valid = gt != IGNORE_INDEX
        lab, g = labels[valid], gt[valid]
        fg, bg = (lab != 0) & (lab != IGNORE_INDEX), lab == 0
        c = self.counts
        c["fg"] += int(fg.sum()); c["fg_right"] += int((fg & (lab == g)).sum())  # noqa: E702
        c["bg"] += int(bg.sum()); c["bg_right"] += int((bg & (g == 0)).sum())  # noqa: E702
        c["uncertain"] += int((lab == IGNORE_INDEX).sum())
        c["gt_fg"] += int((g != 0).sum()); c["gt_fg_covered"] += int(((g != 0) & (lab == g)).sum())  # noqa: E702

    def add_boundary(self, boundary: np.ndarray, scored: np.ndarray, gt_edges: np.ndarray,
                     label_edges: np.ndarray) -> None:
        """The boundary map's cells where GT is not ignored, and which of them are GT's /
        the labels' class edges (all on the boundary's grid)."""
        self.boundary.append(boundary[scored])
        self.gt_edge.append(gt_edges[scored])
        self.label_edge.append(label_edges[scored])

    def summary(self) -> dict:
        c = self.counts
        labelled = c["fg"] + c["bg"] + c["uncertain"]
        scores = np.concatenate(self.boundary)
        gt_edge, label_edge = np.concatenate(self.gt_edge), np.concatenate(self.label_edge)
        return {
            "labels": {"foreground_share": c["fg"] / labelled, "background_share": c["bg"] / labelled,
                       "uncertain_share": c["uncertain"] / labelled,
                       "foreground_precision": c["fg_right"] / max(c["fg"], 1),
                       "background_precision": c["bg_right"] / max(c["bg"], 1),
                       "gt_object_area_covered": c["gt_fg_covered"] / max(c["gt_fg"], 1)},
            "boundary": {"auc_gt_edges": roc_auc(scores, gt_edge), "auc_label_edges": roc_auc(scores, label_edge),
                         "mean_at_gt_edges": float(scores[gt_edge].mean()) if gt_edge.any() else float("nan"),
                         "mean_elsewhere": float(scores[~gt_edge].mean()),
                         "gt_edge_share": float(gt_edge.mean())},
        }


def report_lines(figures: dict) -> list[str]:
    lab, bnd, miou = figures["labels"], figures["boundary"], figures["miou"]
    lines = [f"{figures['run']}: {figures['images']} photos with GT",
             f"  boundary net's labels (CRF confident split): foreground {100 * lab['foreground_share']:.1f}% of "
             f"pixels ({100 * lab['foreground_precision']:.1f}% right), background "
             f"{100 * lab['background_share']:.1f}% ({100 * lab['background_precision']:.1f}% right), uncertain "
             f"{100 * lab['uncertain_share']:.1f}%; GT object area labelled right: "
             f"{100 * lab['gt_object_area_covered']:.1f}%",
             f"  boundary map: AUC {bnd['auc_gt_edges']:.3f} on GT class edges ({100 * bnd['gt_edge_share']:.1f}% of "
             f"grid cells), {bnd['auc_label_edges']:.3f} on its labels' edges; mean "
             f"{bnd['mean_at_gt_edges']:.3f} at GT edges, {bnd['mean_elsewhere']:.3f} elsewhere"]
    names = {"seeds": "seeds", "crf": "CRF (confident split, uncertain left out)", "walk_as_run": "walk, as the run made it",
             "walk_learned": "walk, learned boundary", "walk_no_boundary": "walk, no boundary (diffusion)",
             "walk_gt_edges": "walk, GT class edges (oracle)"}
    for key, name in names.items():
        lines.append(f"  {name:<44} mIoU {100 * miou[key]:5.1f}%  ({100 * (miou[key] - miou['seeds']):+.1f} over seeds)")
    return lines


def main() -> int:
    import torch

    from pipeline.images import to_normalized_tensor
    from pipeline.models.boundary import load_boundary_net
    from pipeline.relations import random_walk_mask

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--images", type=int, default=None, help="the first N photos with GT (default: all)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    run = RunFolder(args.run)
    dataset, class_maps, seeds = run.get(PreparedData).load(), run.get(ClassMaps), run.get(SeedScores)
    crf, walked = run.get(PseudoMasks, "refine_masks"), run.get(PseudoMasks, "random_walk")
    walk = run.settings(PseudoMasks, "random_walk", stage="random_walk")
    net = load_boundary_net(run.get(BoundaryWeights).model_path)
    ids = seeds.scored_ids(dataset)[:args.images]
    scores = {name: MaskScore(len(dataset.classes)) for name in
              ("seeds", "crf", "walk_as_run", "walk_learned", "walk_no_boundary", "walk_gt_edges")}
    tally = Tally()
    seed_recipe = PseudoMaskRecipe(background="fixed", threshold=seeds.threshold, alpha=0.0, crf=CRFParams(),
                                   confident=ConfidentSplit())  # the seeds evaluate_maps scored
    for image_id in progress(ids, "walk diagnosis"):
        image, gt = dataset.load_image(image_id), dataset.load_mask(image_id)
        maps, classes = class_maps.read_image(image_id)
        labels = read_mask(crf.mask_path(image_id))
        tally.add_labels(labels, gt)
        boundary = net.predict(to_normalized_tensor(image)[None], walk["flip"])
        gt_small = on_grid(gt, tuple(boundary.shape))
        gt_edges = class_edges(gt_small)
        tally.add_boundary(boundary.numpy(), gt_small != IGNORE_INDEX, gt_edges,
                           class_edges(on_grid(labels, tuple(boundary.shape))))
        for name, edges in (("walk_learned", boundary), ("walk_no_boundary", torch.zeros_like(boundary)),
                            ("walk_gt_edges", torch.from_numpy(gt_edges.astype(np.float32)))):
            mask = random_walk_mask(torch.from_numpy(maps), classes, edges, walk["radius"], walk["beta"],
                                    walk["exp_times"], walk["bg_threshold"], walk["map_power"])
            scores[name].add(mask.numpy().astype(np.uint8), gt)
        scores["seeds"].add(seed_mask(maps, classes, seed_recipe), gt)
        scores["crf"].add(labels, gt)
        scores["walk_as_run"].add(read_mask(walked.mask_path(image_id)), gt)
    figures = tally.summary()
    figures["miou"] = {name: s.summary(dataset.classes)["miou"] for name, s in scores.items()}
    figures.update(run=str(args.run), images=len(ids), walk_settings=walk)
    figures["lines"] = report_lines(figures)
    print("\n".join(figures["lines"]))
    if args.json:
        from bench.seeds import commit, machine
        from pipeline.versions import package_versions

        figures.update(command="python bench/walk_diagnosis.py " + " ".join(sys.argv[1:]), machine=machine(),
                       commit=commit(), package_versions=package_versions())
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
