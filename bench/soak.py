"""Kill a pipeline run at random moments, resume it, and compare it with an uninterrupted run.

    python bench/soak.py                                  # the default config, 10 kills
    python bench/soak.py --reference outputs/default      # reuse a finished uninterrupted run
    python bench/soak.py --config configs/x.py --kills 5 --seed 3

The killed run is started `--kills` times with `--stage all` and SIGKILLed (with its
data-loader and joblib workers) after a random delay, then run to the end. Then every
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
SKIPPED_NAMES = {"manifest.json", ".in_progress.json", "pipeline.log", "last.pth", "config.py"}
SKIPPED_DIRS = {"work", "report", "show"}  # mmengine's logs and checkpoints; the report's timestamps
TIMING_KEYS = {"images_per_s", "steps_this_attempt_per_rank", "duration_s"}


def run_pipeline(config: str, run_dir: Path, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "run_pipeline.py", "--config", config, "--work-dir", str(run_dir), "--stage", "all", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group: workers die with it


def stage_running(run_dir: Path) -> str:
    markers = sorted(run_dir.glob("*/.in_progress.json"), key=lambda p: p.stat().st_mtime)
    return markers[-1].parent.name if markers else "-"


def soak(config: str, run_dir: Path, kills: int, rng: random.Random, min_s: float, max_s: float,
         extra: list[str]) -> list[tuple[float, str]]:
    killed = []
    for _ in range(kills):
        process = run_pipeline(config, run_dir, extra)
        delay = rng.uniform(min_s, max_s)
        try:
            process.wait(timeout=delay)
            print(f"  the run finished before the kill at {delay:.0f} s")
            return killed
        except subprocess.TimeoutExpired:
            stage = stage_running(run_dir)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            killed.append((delay, stage))
            print(f"  SIGKILL after {delay:5.1f} s, during {stage}", flush=True)
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
    if a.suffix in (".json", ".txt", ".py"):  # paths of the run folders differ
        return da.replace(str(root_a.resolve()).encode(), b"RUN") == db.replace(str(root_b.resolve()).encode(),
                                                                               b"RUN") or _same_card(da, db)
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
    parser.add_argument("--seed", type=int, default=0, help="draws the kill delays")
    parser.add_argument("--min-delay", type=float, default=8.0, help="seconds after a start (imports take ~5 s)")
    parser.add_argument("--max-delay", type=float, default=60.0)
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
    print(f"killed run -> {resumed} ({args.kills} SIGKILLs after {args.min_delay:.0f}-{args.max_delay:.0f} s)")
    t0 = time.time()
    killed = soak(args.config, resumed, args.kills, random.Random(args.seed), args.min_delay, args.max_delay, extra)
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
