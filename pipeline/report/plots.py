"""Plots for the report (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.atomic import atomic_path  # noqa: E402


def sweep_plot(curves: dict[str, list[list[float]]], chosen: dict[str, float], path: Path) -> None:
    """Seed mIoU against the background threshold, one line per run, its chosen t marked."""
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    for name, curve in curves.items():
        t, miou = zip(*curve)
        line, = ax.plot(t, [100 * m for m in miou], label=name)
        if name in chosen:
            ax.axvline(chosen[name], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xlabel("background threshold t")
    ax.set_ylabel("seed mIoU (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
