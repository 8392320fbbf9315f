"""Write the figures of README.md and docs/results.md from the benches' JSON files.

    python bench/readme_tables.py           # rewrite every figure block from docs/figures/*.json
    python bench/readme_tables.py --check   # exit 1 if a block differs from its JSON (a test runs this)

A block is `<!-- figures:NAME -->` ... `<!-- /figures:NAME -->` in a Markdown file; its
content is made from `docs/figures/NAME.json`, a file a bench wrote with `--json`
(bench/seeds.py) or its results.json (bench/real_photos.py): the table, then the
command that made it, the machine, the commit and the package versions. No figure in
those files is typed by hand, and each is stated in one place. The block `stages` is the
stage table, made from the stage registry's declarations (`pipeline.stage.stages_for`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "results.md")
BLOCK = re.compile(r"(<!-- figures:(?P<name>[\w/-]+) -->\n)(?P<body>.*?)(<!-- /figures:(?P=name) -->)", re.S)


def render(name: str) -> str:
    """A figure block's Markdown from its JSON file: `NAME` its table, `NAME/runs` the
    per-run lines the bench printed, `NAME/seeds` one row per seed of bench/seeds.py's runs,
    `NAME/pooled` one row over all of them (mean ± sd, range)."""
    if name == "stages":
        return stage_table()
    name, _, part = name.partition("/")
    path = FIGURES / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run the bench command that writes it (see its block's text)")
    saved = json.loads(path.read_text())
    if part == "runs":
        return "```\n" + "\n".join(saved["lines"]) + "\n```\n\n" + footer(saved)
    if part == "pooled":
        return pooled_table(saved) + "\n" + footer(saved)
    if part == "seeds":
        rows = ["| method | seed | seed mIoU | pseudo-mask mIoU | segmenter val mIoU | segmenter - pseudo-mask |",
                "|---|---|---|---|---|---|"]
        rows += [f"| {method} | {r['seed_index']} | {100 * r['seed']:.1f} | {100 * r['pseudo']:.1f} "
                 f"| {100 * r['segmenter']:.1f} | {100 * (r['segmenter'] - r['pseudo']):+.1f} |"
                 for method, runs in saved["runs"].items() for r in runs if r.get("segmenter") is not None]
        return "\n".join(rows) + "\n\n" + footer(saved)
    table = saved["table"] if isinstance(saved["table"], list) else saved["table"].splitlines()
    return "\n".join(table) + "\n\n" + footer(saved)


def pooled_table(saved: dict) -> str:
    """One row over every run of a bench/seeds.py file (all its seeds under every instruction
    set): the spread a run on an unknown x86 CPU should be compared with."""
    import numpy as np

    runs = [r for rows in saved["runs"].values() for r in rows]

    def cell(key: str) -> str:
        values = 100 * np.array([r[key] for r in runs if r.get(key) is not None], dtype=np.float64)
        if len(values) < 2:
            return "-"
        return f"{values.mean():.1f} ± {values.std(ddof=1):.1f} ({values.min():.1f}-{values.max():.1f}, {len(values)} runs)"

    return ("| runs | seed mIoU | pseudo-mask mIoU | segmenter val mIoU |\n|---|---|---|---|\n"
            f"| {' + '.join(saved['runs'])} | {cell('seed')} | {cell('pseudo')} | {cell('segmenter')} |\n")


def stage_table() -> str:
    """The built-in stages in pipeline order, as they declare themselves."""
    sys.path.insert(0, str(ROOT))
    from pipeline.stage import stages_for

    rows = ["| stage | what it does | consumes | produces |", "|---|---|---|---|"]
    for stage in stages_for():
        kinds = dict.fromkeys(i.kind + (" (optional)" if i.optional else "") for i in stage.consumes)
        rows.append(f"| `{stage.name}` | {stage.description} | {', '.join(kinds) or '-'} | {stage.produces or '-'} |")
    return "\n".join(rows) + "\n"


def footer(saved: dict) -> str:
    """The command that made a table, the machine, the commit and the package versions."""
    versions = ", ".join(f"{k} {v}" for k, v in saved.get("package_versions", saved.get("versions", {})).items())
    return f"`{saved['command']}`: {saved['machine']}; commit {saved.get('commit') or 'unknown'}; {versions}.\n"


def rewrite(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 where a block is out of date")
    args = parser.parse_args()
    stale = []
    for document in DOCUMENTS:
        text = document.read_text()
        new = rewrite(text)
        if new != text:
            stale.append(document.relative_to(ROOT))
            if not args.check:
                document.write_text(new)
    if args.check and stale:
        print(f"out of date with docs/figures/*.json: {', '.join(map(str, stale))}; run python bench/readme_tables.py")
        return 1
    print("rewrote " + ", ".join(map(str, stale)) if stale else "every figure block matches its JSON")
    return 0


if __name__ == "__main__":
    sys.exit(main())
