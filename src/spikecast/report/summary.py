"""Terminal tables of results (rich)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _fmt_count(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.2f}"


def results_table(results: dict[str, Any], title: str | None = None) -> Table:
    """ANN vs every scheme of a ``results.json`` dictionary: accuracy under the scheme's
    readout, accuracy by spike count alone (ties wrong) and the tied share, spikes per
    neuron, synaptic events vs ANN MACs."""
    n = results["n_samples"]
    table = Table(
        title=title or f"{results['dataset']}: ANN vs SNN ({n} samples)",
        caption="per-sample means; syn. events = spikes x fan-out (accumulates); "
        "count acc % = most output spikes, ties wrong",
    )
    for col, justify in (
        ("model", "left"), ("readout", "left"), ("acc %", "right"), ("Δ pts", "right"),
        ("count acc %", "right"), ("tied %", "right"),
        ("spk/neuron", "right"), ("syn. events", "right"), ("ANN MACs", "right"),
        ("events/MAC", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=col in ("model", "readout"))
    ann_acc, macs = results["ann"]["accuracy"], results["ann"]["macs"]
    table.add_row("ANN", "argmax", f"{100 * ann_acc:.2f}", "", "", "", "", "",
                  _fmt_count(macs), "")
    for name, entry in results["schemes"].items():
        ratio = entry["synaptic_events"] / macs if macs else float("nan")
        table.add_row(
            name,
            entry["readout"],
            f"{100 * entry['accuracy']:.2f}",
            f"{100 * (entry['accuracy'] - ann_acc):+.2f}",
            f"{100 * entry['accuracy_spike_count']:.2f}",
            f"{100 * entry['tied_fraction']:.1f}",
            f"{entry['spikes_per_neuron']:.3f}",
            _fmt_count(entry["synaptic_events"]),
            _fmt_count(entry["ann_macs"]),
            f"{ratio:.3f}",
        )
    for name, why in results.get("failed", {}).items():
        table.add_row(name, "", "failed", "", "", "", "", "", "", "", style="red")
        table.caption = f"{table.caption}\n{name}: {why}"
    return table
