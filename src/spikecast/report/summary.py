"""Terminal tables of results (rich)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _fmt_count(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.2f}"


def results_table(results: dict[str, Any], title: str | None = None) -> Table:
    """ANN vs every scheme of a ``results.json`` dictionary: accuracy, spikes per neuron,
    synaptic events vs ANN MACs."""
    n = results["n_samples"]
    table = Table(
        title=title or f"{results['dataset']}: ANN vs SNN ({n} samples)",
        caption="per-sample means; syn. events = spikes x fan-out (accumulates)",
    )
    for col, justify in (
        ("model", "left"), ("acc %", "right"), ("Δ pts", "right"),
        ("spk/neuron", "right"), ("syn. events", "right"), ("ANN MACs", "right"),
        ("events/MAC", "right"),
    ):
        table.add_column(col, justify=justify)
    ann_acc, macs = results["ann"]["accuracy"], results["ann"]["macs"]
    table.add_row("ANN", f"{100 * ann_acc:.2f}", "", "", "", _fmt_count(macs), "")
    for name, entry in results["schemes"].items():
        ratio = entry["synaptic_events"] / macs if macs else float("nan")
        table.add_row(
            name,
            f"{100 * entry['accuracy']:.2f}",
            f"{100 * (entry['accuracy'] - ann_acc):+.2f}",
            f"{entry['spikes_per_neuron']:.3f}",
            _fmt_count(entry["synaptic_events"]),
            _fmt_count(entry["ann_macs"]),
            f"{ratio:.3f}",
        )
    for name, why in results.get("failed", {}).items():
        table.add_row(name, "failed", "", "", "", "", "", style="red")
        table.caption = f"{table.caption}\n{name}: {why}"
    return table
