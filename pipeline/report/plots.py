"""Plots for the report (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.atomic import atomic_path  # noqa: E402


def sweep_plot(curves: dict[str, list[list[float]]], chosen: dict[str, float], path: Path) -> None:
    """Seed mIoU against the background threshold, one line per run; on each, the t the run
    chose (a dotted line, labelled with its value) and the oracle t (the curve's best, on GT)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=100)
    for name, curve in curves.items():
        t, miou = zip(*curve)
        line, = ax.plot(t, [100 * m for m in miou], label=f"run {name}")
        best = max(range(len(miou)), key=lambda k: miou[k])
        ax.plot(t[best], 100 * miou[best], marker="*", markersize=11, color=line.get_color(), linestyle="none",
                label=f"oracle t = {t[best]:.2f} (best on GT): {100 * miou[best]:.1f}%")
        if name in chosen:
            ax.axvline(chosen[name], color=line.get_color(), linestyle=":", linewidth=1.2,
                       label=f"chosen t = {chosen[name]:.2f} (used by the run)")
    ax.set_xlabel("background threshold t")
    ax.set_ylabel("seed mIoU (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def premise_plot(offsets: list[int], runs: dict[str, dict[str, dict]], path: Path) -> None:
    """The premise curves (pipeline.premise): CE (top) and relative class activation
    (bottom) against the mask offset, one column per class, one line per run."""
    classes = sorted({c for per_class in runs.values() for c in per_class})
    fig, axes = plt.subplots(2, max(1, len(classes)), figsize=(2.6 * max(1, len(classes)), 4.6), dpi=100,
                             squeeze=False, sharex=True)
    for name, per_class in runs.items():
        for k, cls in enumerate(classes):
            if cls in per_class:
                axes[0, k].plot(offsets, per_class[cls]["ce"], marker=".", label=name)
                axes[1, k].plot(offsets, per_class[cls]["activation"], marker=".", label=name)
    for k, cls in enumerate(classes):
        axes[0, k].set_title(cls)
        axes[1, k].set_xlabel("mask offset (px)")
        for row in (0, 1):
            axes[row, k].axvline(0, color="grey", lw=0.5)
            axes[row, k].grid(alpha=0.3)
    axes[0, 0].set_ylabel("CE, masked features")
    axes[1, 0].set_ylabel("class activation (rel.)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
