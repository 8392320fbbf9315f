"""Kill a pipeline run at random moments, resume it, and compare it with an uninterrupted run.

    python bench/soak.py                                  # the default config, 10 kills
    python bench/soak.py --reference outputs/default      # reuse a finished uninterrupted run
    python bench/soak.py --config configs/x.py --kills 5 --seed 3

The killed run is started with `--stage all` and SIGKILLed (with its data-loader and
joblib workers) `--kills` times, each a random moment into one of the `--targets`
stages in turn (train_localizer, export_maps, refine_masks, train_segmenter by default),
then run to the end. Then every
artifact of the two run folders is compared: weights tensor by tensor, maps, masks and
predictions byte by byte, text files with the run folder's path masked, and each
stage's metrics (timings left out). It prints what differs, and exits 1 if anything does.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# Files that hold times, logs, or training state that the final weights supersede.
SKIPPED_NAMES = {"manifest.json", ".in_progress.json", "pipeline.log", "last.pth", "config.py", ".lock"}
SKIPPED_DIRS = {"work", "report", "show"}  # mmengine's logs and checkpoints; the report's timestamps
TIMING_KEYS = {"images_per_s", "steps_this_attempt_per_rank", "duration_s"}


def run_pipeline(config: str, run_dir: Path, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "run_pipeline.py", "--config", config, "--work-dir", str(run_dir), "--stage", "all", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group: workers die with it


def running_since(run_dir: Path, stage: str, started: float) -> bool:
    """Whether this invocation has started `stage` (its in-progress marker is newer than the start)."""
    marker = run_dir / stage / ".in_progress.json"
    return marker.is_file() and marker.stat().st_mtime >= started


def soak(config: str, run_dir: Path, kills: int, targets: list[str], rng: random.Random, max_into: float,
         extra: list[str]) -> list[tuple[str, float]]:
    """Kill k goes to stage targets[k % len(targets)]: a random 0.5..max_into s after that
    stage starts (or resumes). A target already finished is passed over."""
    killed = []
    k = 0
    while len(killed) < kills:
        order = targets[k % len(targets):] + targets[:k % len(targets)]  # the next in turn, then the others
        todo = [t for t in order if not (run_dir / t / "manifest.json").is_file()]
        if not todo:
            print("  every target stage finished; no more kills")
            break
        target = todo[0]
        k += 1
        started = time.time()
        process = run_pipeline(config, run_dir, extra)
        while process.poll() is None and not running_since(run_dir, target, started):
            time.sleep(0.2)
        if process.poll() is not None:
            raise SystemExit(f"the run ended (exit {process.returncode}) before {target} started; "
                             f"see {run_dir / 'pipeline.log'}")
        delay = rng.uniform(0.5, max_into)
        try:
            process.wait(timeout=delay)
            print(f"  {target} finished within {delay:.1f} s of starting: no kill")
            continue
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            killed.append((target, delay))
            print(f"  SIGKILL {delay:5.1f} s into {target}", flush=True)
    process = run_pipeline(config, run_dir, extra)
    if process.wait() != 0:
        raise SystemExit(f"the resumed run failed (exit {process.returncode}); see {run_dir / 'pipeline.log'}")
    return killed


def artifacts(run_dir: Path) -> dict[Path, Path]:
    found = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if path.is_file() and path.name not in SKIPPED_NAMES and not SKIPPED_DIRS & set(rel.parts[1:2]) \
                and rel.parts[0] not in SKIPPED_DIRS:
            found[rel] = path
    return found


def same_file(a: Path, b: Path, root_a: Path, root_b: Path) -> bool:
    if a.suffix == ".pth":
        sa = torch.load(a, map_location="cpu", weights_only=True)
        sb = torch.load(b, map_location="cpu", weights_only=True)
        sa, sb = sa.get("state_dict", sa), sb.get("state_dict", sb)
        return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    da, db = a.read_bytes(), b.read_bytes()
    if da == db:
        return True
    if a.suffix in (".json", ".txt", ".py"):  # paths of the run folders differ (and so does line wrapping)
        def masked(data: bytes, root: Path) -> bytes:
            return b"".join(data.replace(str(root.resolve()).encode(), b"RUN").split())

        return masked(da, root_a) == masked(db, root_b) or _same_card(da, db)
    return False


def _same_card(da: bytes, db: bytes) -> bool:
    """Data-set cards name the stages they came from by run id, which each run draws anew."""
    try:
        ca, cb = json.loads(da), json.loads(db)
    except ValueError:
        return False
    for card in (ca, cb):
        card.pop("from_stages", None)
        card.pop("images_dir", None)
    return ca == cb


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def compare(reference: Path, resumed: Path) -> list[str]:
    differences = []
    ref, res = artifacts(reference), artifacts(resumed)
    for rel in sorted(set(ref) ^ set(res)):
        differences.append(f"only in {'the reference' if rel in ref else 'the resumed run'}: {rel}")
    same = 0
    for rel in sorted(set(ref) & set(res)):
        if same_file(ref[rel], res[rel], reference, resumed):
            same += 1
        else:
            differences.append(f"differs: {rel}")
    for manifest in sorted(reference.glob("*/manifest.json")):
        other = resumed / manifest.parent.name / "manifest.json"
        if not other.is_file():
            differences.append(f"stage not finished in the resumed run: {manifest.parent.name}")
            continue
        a, b = json.loads(manifest.read_text()), json.loads(other.read_text())
        if without_timings(a["metrics"]) != without_timings(b["metrics"]):
            keys = [k for k in a["metrics"] if without_timings(a["metrics"].get(k)) !=
                    without_timings(b["metrics"].get(k))]
            differences.append(f"metrics differ in {manifest.parent.name}: {', '.join(keys)}")
    print(f"compared {same + len(differences)} artifacts: {same} identical")
    return differences


def headline(run_dir: Path) -> str:
    def metric(stage, key):
        value = (json.loads((run_dir / stage / "manifest.json").read_text())["metrics"]).get(key)
        return f"{100 * value:.1f}%" if isinstance(value, float) else "-"

    attempts = {d.name: len(json.loads((d / "manifest.json").read_text()).get("attempts", [1]))
                for d in sorted(run_dir.iterdir()) if (d / "manifest.json").is_file()}
    tries = ", ".join(f"{k} {v}" for k, v in attempts.items() if v > 1) or "none"
    return (f"seed {metric('evaluate_maps', 'seed_miou')}, pseudo-mask {metric('refine_masks', 'miou')}, "
            f"segmenter {metric('evaluate_segmenter', 'miou')}; stages run more than once: {tries}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/default.py")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="draws the kill moments")
    parser.add_argument("--targets", nargs="+", default=["train_localizer", "export_maps", "refine_masks",
                                                          "train_segmenter"])
    parser.add_argument("--max-into", type=float, default=20.0, help="latest kill, in seconds into a stage")
    parser.add_argument("--reference", type=Path, help="a finished uninterrupted run of the same config")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "outputs" / "soak")
    parser.add_argument("--cfg-options", nargs="*", default=[])
    args = parser.parse_args()
    extra = ["--cfg-options", *args.cfg_options] if args.cfg_options else []

    reference = args.reference or args.work_dir / "uninterrupted"
    if args.reference is None:
        print(f"uninterrupted run -> {reference}")
        t0 = time.time()
        if run_pipeline(args.config, reference, extra).wait() != 0:
            raise SystemExit(f"the uninterrupted run failed; see {reference / 'pipeline.log'}")
        print(f"  {time.time() - t0:.0f} s")
    resumed = args.work_dir / "killed"
    if resumed.exists():
        raise SystemExit(f"{resumed} exists: remove it first (the soak starts from an empty folder)")
    print(f"killed run -> {resumed} ({args.kills} SIGKILLs, each up to {args.max_into:.0f} s into a stage of "
          f"{', '.join(args.targets)})")
    t0 = time.time()
    killed = soak(args.config, resumed, args.kills, args.targets, random.Random(args.seed), args.max_into, extra)
    print(f"  {len(killed)} kills, then ran to the end: {time.time() - t0:.0f} s in all")
    print(f"uninterrupted: {headline(reference)}")
    print(f"killed {len(killed)}x:   {headline(resumed)}")
    differences = compare(reference, resumed)
    for line in differences:
        print("  " + line)
    print("IDENTICAL" if not differences else f"{len(differences)} DIFFERENCES")
    return 0 if not differences else 1


if __name__ == "__main__":
    sys.exit(main())
