"""Report figures drawn from an extended results dict (see :mod:`spikecast.report.compare`).

Every function returns PNG bytes (matplotlib, Agg backend) so the HTML can embed them.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

Results = dict[str, Any]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _overlay(results: Results, key: str, x_label: str, log_x: bool, ann_x: float | None,
             title: str = "") -> bytes:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    positive = [] if ann_x is None or ann_x <= 0 else [ann_x]
    for name, entry in results["schemes"].items():
        curve = entry.get("curves", {}).get(key)
        if not curve:
            continue
        xs = curve["fraction"] if key == "time" else curve["x"]
        positive += [v for v in xs if v > 0]
        suffix = "" if key == "time" or curve.get("exact") else " (linear in time)"
        ax.plot(xs, [100 * a for a in curve["accuracy"]], label=f"{name}{suffix}")
    ann = 100 * results["ann"]["accuracy"]
    if ann_x is None:
        ax.axhline(ann, color="k", ls="--", lw=1, label="ANN")
    else:
        ax.plot([ann_x], [ann], "k*", ms=10, label="ANN (effective MACs)")
    if log_x and positive:
        ax.set_xscale("symlog", linthresh=min(positive))
        ax.set_xlim(left=0)
    ax.set_xlabel(x_label)
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def accuracy_vs_time(results: Results) -> bytes:
    """Accuracy over the fraction of each scheme's window, every scheme overlaid."""
    windows = ", ".join(
        f"{n}: {e['curves']['time']['x'][-1]:g} {e['curves']['time']['x_label']}"
        for n, e in results["schemes"].items() if e.get("curves")
    )
    return _overlay(results, "time", "fraction of the window", False, None,
                    f"windows: {windows}")


def accuracy_vs_spikes(results: Results) -> bytes:
    """Accuracy against cumulative spikes per neuron."""
    return _overlay(results, "spikes", "spikes per neuron", True, None)


def accuracy_vs_ops(results: Results) -> bytes:
    """Accuracy against cumulative synaptic operations (effective MACs + ACs) per sample."""
    return _overlay(results, "ops", "synaptic operations per sample (MACs + ACs)", True,
                    results["ann"]["effective_macs"])


def fidelity(results: Results) -> bytes:
    """Per-layer correlation and relative MAE of every scheme against the ANN."""
    schemes = {n: e["fidelity"] for n, e in results["schemes"].items() if e.get("fidelity")}
    if not schemes:
        raise ValueError("no scheme reports per-layer outputs for fidelity")
    fig, (ax_c, ax_m) = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.8 / max(len(schemes), 1)
    for k, (name, layers) in enumerate(schemes.items()):
        xs = [i + k * width for i in range(len(layers))]
        ax_c.bar(xs, [la["correlation"] or 0.0 for la in layers], width, label=name)
        ax_m.bar(xs, [la["relative_mae"] or 0.0 for la in layers], width, label=name)
    first = next(iter(schemes.values()))
    for ax, label in ((ax_c, "correlation with ANN"), (ax_m, "MAE / mean |ANN activation|")):
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(first))])
        ax.set_xticklabels([la["name"] for la in first], rotation=30, fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    ax_c.set_ylim(min(0.0, ax_c.get_ylim()[0]), 1.0)
    return _png(fig)


def firing_histograms(results: Results) -> bytes:
    """One panel per scheme: distribution over neurons of the mean spikes per sample,
    every layer overlaid."""
    schemes = {n: e["firing"] for n, e in results["schemes"].items() if e.get("firing")}
    if not schemes:
        raise ValueError("no scheme reports per-neuron spike counts")
    fig, axes = plt.subplots(1, len(schemes), figsize=(4.4 * len(schemes), 3.4), squeeze=False)
    for ax, (name, layers) in zip(axes[0], schemes.items(), strict=True):
        for layer in layers:
            ax.stairs(layer["counts"], layer["edges"], label=layer["name"])
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_xlabel(layers[0]["label"])
        ax.set_ylabel("neurons")
        ax.set_title(name)
        ax.legend(fontsize=7)
    return _png(fig)


def best_scheme(results: Results) -> str | None:
    """The scheme with the highest accuracy that has a confusion matrix."""
    ranked = [(e["accuracy"], n) for n, e in results["schemes"].items() if e.get("confusion")]
    return max(ranked)[1] if ranked else None


def confusion(results: Results) -> bytes:
    """Confusion matrix (true x predicted) of the best scheme."""
    name = best_scheme(results)
    if name is None:
        raise ValueError("no scheme result carries a confusion matrix")
    matrix = results["schemes"][name]["confusion"]
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(3.0 + 0.45 * n, 2.6 + 0.45 * n))
    image = ax.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i][j]), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{name}: confusion matrix")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _png(fig)
