"""Small HTML builders for the report: escaped tables, figures, one inline stylesheet."""

from __future__ import annotations

import html
import json
from typing import Any, Iterable

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
.done { color: #1a7f37; } .stale, .missing { color: #b35900; }
figure { margin: 10px 0; } figcaption { font-size: 12px; color: #555; }
img { max-width: 100%; image-rendering: pixelated; }
pre { background: #f6f6f6; padding: 8px; font-size: 12px; overflow-x: auto; }
.note { font-size: 13px; color: #555; }
.colorbar { display: inline-block; width: 160px; height: 10px; vertical-align: middle; margin: 0 4px;
  background: linear-gradient(to right, #00007f, #0000ff, #007fff, #00ffff, #7fff7f, #ffff00, #ff7f00, #ff0000,
  #7f0000); border: 1px solid #999; }
.legend { font-size: 13px; } .swatch { margin-right: 12px; white-space: nowrap; }
.swatch span { display: inline-block; width: 12px; height: 12px; border: 1px solid #999; margin-right: 4px;
  vertical-align: middle; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value))


def percent(value: Any) -> str:
    return f"{100 * value:.1f}" if isinstance(value, (int, float)) and value == value else "–"


def table(header: Iterable[Any], rows: Iterable[Iterable[Any]], raw: bool = False) -> str:
    """A table; cells are escaped unless `raw` (for cells this module built)."""
    cell = (lambda v: str(v)) if raw else esc
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(src: str, caption: str) -> str:
    return f'<figure><img src="{esc(src)}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'


def pre_json(obj: Any) -> str:
    return f"<pre>{esc(json.dumps(obj, indent=2))}</pre>"


def document(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")
