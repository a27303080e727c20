"""Figures shared by every scheme (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from spikecast.io.atomic import atomic_write


def plot_accuracy_vs_time(results: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """One panel per scheme of a ``results.json`` dictionary: accuracy after each time
    step / time point, the ANN as a dashed line.

    Schemes run on different clocks (steps, microseconds, time units), so each gets its
    own x axis.
    """
    curves = {k: e["curve"] for k, e in results["schemes"].items() if e.get("curve")}
    if not curves:
        raise ValueError("no scheme result carries an accuracy curve to plot")
    ann = 100 * results["ann"]["accuracy"]
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
    for ax, (name, curve) in zip(axes[0], curves.items(), strict=True):
        ax.plot(curve["x"], [100 * a for a in curve["accuracy"]], label=f"{name} SNN")
        ax.axhline(ann, color="k", ls="--", lw=1, label="ANN")
        ax.set_xlabel(curve["x_label"])
        ax.set_ylabel("accuracy (%)")
        ax.set_title(name)
        ax.set_ylim(0, 101)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))
    finally:
        plt.close(fig)
