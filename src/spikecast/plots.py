"""Figures shared by every scheme (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from spikecast.metrics import SchemeResult


def plot_accuracy_vs_time(
    results: dict[str, SchemeResult], ann_accuracy: float, path: str | Path, title: str = ""
) -> Path:
    """One panel per scheme: accuracy after each time step / time point, ANN as a line.

    Schemes run on different clocks (steps, microseconds, time units), so each gets its
    own x axis.
    """
    with_curves = {k: r for k, r in results.items() if r.curve is not None and r.curve.x}
    if not with_curves:
        raise ValueError("no scheme result carries an accuracy curve to plot")
    fig, axes = plt.subplots(
        1, len(with_curves), figsize=(4.2 * len(with_curves), 3.4), squeeze=False
    )
    for ax, (name, res) in zip(axes[0], with_curves.items(), strict=True):
        ax.plot(res.curve.x, [100 * a for a in res.curve.accuracy], label=f"{name} SNN")
        ax.axhline(100 * ann_accuracy, color="k", ls="--", lw=1, label="ANN")
        ax.set_xlabel(res.curve.x_label)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(name)
        ax.set_ylim(0, 101)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
