"""IRN's random walk: the class maps spread over the boundary net's affinities
into a second pseudo-mask data set (same format as refine_masks').

Per image: the boundary map (stride 4, averaged with its flip), the exported class maps
(raised to `map_power`) averaged down to that grid, the walk
(`pipeline.relations.random_walk`: beta, 2^exp_times steps, pairs within `radius`), back
to full size, one background threshold. The rest is the pseudo-mask body every
refinement shares (`pipeline/refinement.py`): scored against GT on the images the seeds
were, next to the CRF's set it started from (`crf_miou`, `random_walk_gain`). Runs on
the GPU where there is one, in this process; under torchrun each process walks every
world_size-th image. Per-image resume.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline import distributed
from pipeline.artifacts import DEFAULT_REFINEMENT, BoundaryWeights, PseudoMasks
from pipeline.log import get_logger
from pipeline.pseudo_mask_set import check_image_mode
from pipeline.refinement import REFINEMENT_INPUTS, MaskSetOptions, refine_each_image
from pipeline.runner import StageContext, StageResult
from pipeline.stage import Input, register_stage


@dataclasses.dataclass(frozen=True)
class RandomWalkSettings:
    pseudo_masks: str = DEFAULT_REFINEMENT  # the set the boundary net learned from, compared with
    radius: int = 5  # IRN at inference: 5 (training: boundary_net.radius)
    beta: float = 10.0  # affinity ** beta
    exp_times: int = 8  # 2 ** exp_times steps
    bg_threshold: float = 0.25  # IRN's sem_seg_bg_thres (BAS-Extension: 0.22)
    map_power: float = 1.0  # maps ** power before the walk (IRN: 1; BAS-Extension: 1.5)
    flip: bool = True  # boundary map averaged with the flipped image's
    images: str = "hardlink"  # how the images enter the pseudo-mask set: 'hardlink', 'copy' or 'symlink'

    def __post_init__(self) -> None:
        check_image_mode(self.images, "random_walk.images")


@register_stage(
    step=9, produces=PseudoMasks, settings=RandomWalkSettings, on_demand=True,  # on when a stage names it
    consumes=(*REFINEMENT_INPUTS, Input(PseudoMasks, select="random_walk.pseudo_masks"), BoundaryWeights),
    description="IRN's random walk over the boundary net's affinities: a second pseudo-mask data set",
    headline=("miou", "random-walk mIoU"),
    distributed=True)  # sharded: each process does every world_size-th image
def random_walk(ctx: StageContext) -> StageResult:
    settings = ctx.settings()
    crf = ctx.input(PseudoMasks)
    card = crf.card()
    listed = card["counts"]["listed"]
    ids = (crf.root / card["list"]).read_text().split()  # the images the CRF's set holds
    if len(ids) < listed:  # images refine_masks failed on (allow_failures): counted, reported
        get_logger().warning("random_walk: %d of %d images have no CRF mask and are left out", listed - len(ids),
                             listed)
    walk = BoundaryWalk(ctx.input(BoundaryWeights).model_path, settings, distributed.device())
    result = refine_each_image(ctx, walk, dataclasses.asdict(settings),
                               MaskSetOptions(n_jobs=1, images=settings.images), ids=ids)
    if result.metrics and crf.miou is not None:
        result.metrics["crf_miou"] = crf.miou
        result.metrics["random_walk_gain"] = result.metrics["miou"] - crf.miou
        get_logger().info("random_walk: pseudo-mask mIoU %.1f%% after the CRF -> %.1f%% after the random walk",
                          100 * crf.miou, 100 * result.metrics["miou"])
    result.info["device"] = str(walk.device)
    return result


class BoundaryWalk:
    """The walk as a refinement's per-image function: the boundary net, loaded once."""

    def __init__(self, model_path, settings: RandomWalkSettings, device):
        from pipeline.models.boundary import load_boundary_net  # torch: only when the stage runs

        self.model, self.settings, self.device = load_boundary_net(model_path, device), settings, device

    def __call__(self, image: np.ndarray, maps: np.ndarray, classes: np.ndarray, threshold: float) -> np.ndarray:
        import torch

        from pipeline.images import to_normalized_tensor
        from pipeline.relations import random_walk_mask

        s = self.settings
        boundary = self.model.predict(to_normalized_tensor(image)[None].to(self.device), s.flip)
        with torch.no_grad():
            mask = random_walk_mask(torch.from_numpy(maps).to(self.device), classes, boundary, s.radius, s.beta,
                                    s.exp_times, s.bg_threshold, s.map_power)
        return mask.cpu().numpy().astype(np.uint8)
