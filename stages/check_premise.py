"""Does the data set pose the problem BAS solves? (the BAS paper's exploratory
experiment, `pipeline.premise`), on the trained localizer and the training images with GT.
And, GT-free, did BAS solve it for each class? (`pipeline.erasure_check`: erasing a class's
masks should take away its score; a class where it does not is named in a warning.)

Writes `premise.json` (curves and the per-class verdict) and `premise.png`; the report
shows both. Without GT there is nothing to check: the stage says so and counts the
images. It reads the model only, so it neither blocks nor changes the maps.
"""

from __future__ import annotations

from pipeline import distributed
from pipeline.artifacts import PREMISE_CURVES, PREMISE_FIGURE, LocalizerWeights, PreparedData, Premise
from pipeline.atomic import write_json
from pipeline.erasure_check import MASKS_MISS_ABOVE, background_activation_per_class, classes_whose_masks_miss
from pipeline.log import get_logger, progress
from pipeline.premise import PremiseSettings, premise_curves, premise_ids, verdict
from pipeline.runner import StageContext, StageResult
from pipeline.stage import register_stage

@register_stage(
    step=3, consumes=(PreparedData, LocalizerWeights), produces=Premise, settings=PremiseSettings,
    description="the BAS paper's premise check on the trained classifier, where GT exists; GT-free, whether "
                "erasing each class's masks takes its score (BAS)")
def check_premise(ctx: StageContext) -> StageResult:
    settings = ctx.settings()
    dataset = ctx.input(PreparedData).load()
    localizer = ctx.input(LocalizerWeights)
    split = localizer.split  # the images the localizer trained on
    from pipeline.models import load_trained_localizer  # torch: only when the stage runs

    model, method = load_trained_localizer(localizer.model_path, distributed.device())
    erasure = _erasure_check(model, dataset, split, settings.scale)
    chosen, without_gt = premise_ids(dataset, split, settings.images, settings.min_object_share)
    if not chosen:
        get_logger().warning("check_premise: none of the %d %s images has a GT mask: nothing to check", without_gt,
                             split)
        return StageResult(artifact=Premise(ctx.out_dir, checked=False),
                           artifacts={"images": 0, "images_without_gt": without_gt}, metrics=erasure,
                           info={"checked": False})
    from pipeline.report.plots import premise_plot

    offsets = list(range(settings.offsets[0], settings.offsets[1] + 1, settings.step))
    curves = premise_curves(model, dataset, chosen, offsets, settings.scale, settings.min_object_share)
    verdicts = verdict(offsets, curves)
    write_json(ctx.out_dir / PREMISE_CURVES, {"offsets": offsets, "method": method, "curves": curves,
                                           "verdict": verdicts})
    premise_plot(offsets, {method: curves}, ctx.out_dir / PREMISE_FIGURE)
    _log_vanishing(offsets, curves)
    holds = {k: sum(v[k] for v in verdicts.values())
             for k in ("observation_1_partial", "observation_1", "observation_2")}
    get_logger().info("check_premise: of %d classes, observation 1 holds for %d as the paper states it (CE about 0 "
                      "at a partial mask), %d at the whole GT mask; observation 2 for %d", len(verdicts),
                      holds["observation_1_partial"], holds["observation_1"], holds["observation_2"])
    return StageResult(
        artifact=Premise(ctx.out_dir, checked=True),
        artifacts={"images": len(chosen), "images_without_gt": without_gt},
        metrics={f"{k}_classes": v for k, v in holds.items()} | {"verdict": verdicts} | erasure,
        info={"checked": True, "method": method, "curves": PREMISE_CURVES, "figure": PREMISE_FIGURE},
    )


def _erasure_check(model, dataset, split: str, scale: float) -> dict:
    """{'background_activation_per_class', 'masks_miss_objects'}: GT-free, on every image of
    `split`; empty for a localizer that erases nothing (the CAM, DRS)."""
    if not hasattr(model, "background_activation"):
        return {}
    ids = dataset.split(split)
    per_class = background_activation_per_class(model, dataset, progress(ids, "check_premise: erasure check"), scale)
    missed = classes_whose_masks_miss(per_class)
    if missed:
        others = [s["mean"] for name, s in per_class.items() if name not in missed]
        get_logger().warning(
            "check_premise: erasing the masks of %s leaves %s of their class score on average (GT-free; the other "
            "classes: at most %.0f %%): those masks miss their objects, and their seeds will be poor. Re-train "
            "with another train_localizer.seed, or see docs/results.md (erasure check)", ", ".join(missed),
            ", ".join(f"{100 * per_class[n]['mean']:.0f} %" for n in missed), 100 * max(others, default=0.0))
    else:
        get_logger().info("check_premise: erasure check: erasing each class's masks leaves at most %.0f %% of its "
                          "score (GT-free; a class above %.0f %% would be named)",
                          100 * max((s["mean"] for s in per_class.values()), default=0.0), 100 * MASKS_MISS_ABOVE)
    return {"background_activation_per_class": per_class, "masks_miss_objects": missed}


def _log_vanishing(offsets: list[int], curves: dict) -> None:
    """How many objects the curves leave out: those eroded away before the deepest offset."""
    checked = sum(c["objects_checked"] for c in curves.values())
    kept = sum(c["objects"] for c in curves.values())
    get_logger().info("check_premise: the curves hold the %d of %d objects whose mask survives %d px of erosion "
                      "(the others vanish earlier; premise.json: surviving_share per offset)", kept, checked,
                      -offsets[0])
