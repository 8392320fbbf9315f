"""Two small stages for testing the runner without the real ones' cost."""

import dataclasses

from pipeline.artifacts import Artifact
from pipeline.atomic import atomic_path, write_text
from pipeline.runner import StageContext, StageResult
from pipeline.stage import Input, Stage

@dataclasses.dataclass(frozen=True)
class Counts(Artifact):
    """What `count` hands `total`: one file per item."""

    KIND = "counts"
    items: int = 0


CRASH_AFTER: int | None = None  # tests set this to interrupt `count` mid-way


def count(ctx: StageContext) -> StageResult:
    """Writes one file per item; items already written are skipped."""
    toy = ctx.section("toy")
    written = reused = 0
    for i in range(toy["items"]):
        path = ctx.out_dir / f"item_{i:03d}.txt"
        if path.is_file():
            reused += 1
            continue
        if CRASH_AFTER is not None and written == CRASH_AFTER:
            with atomic_path(path) as tmp:  # a crash in the middle of a write
                tmp.write_text("half")
                raise KeyboardInterrupt("simulated crash")
        write_text(path, str(i * toy["scale"]))
        written += 1
    return StageResult(artifact=Counts(ctx.out_dir, items=written + reused),
                       artifacts={"items": written + reused, "reused": reused})


def total(ctx: StageContext) -> StageResult:
    values = [int(p.read_text()) for p in sorted(ctx.input(Counts).folder.glob("item_*.txt"))]
    offset = ctx.section("toy2")["offset"]
    write_text(ctx.out_dir / "total.txt", str(sum(values) + offset))
    return StageResult(metrics={"total": sum(values) + offset})


STAGES = [
    Stage("count", count, step=1, artifact=Counts, settings={"toy": None}),
    Stage("total", total, step=2, consumes=(Input(Counts),), settings={"toy2": None}),
]
