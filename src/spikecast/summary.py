"""Terminal tables of results (rich)."""

from __future__ import annotations

from rich.table import Table

from spikecast.metrics import RunResults


def _fmt_count(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.2f}"


def results_table(run: RunResults, title: str | None = None) -> Table:
    """ANN vs every scheme: accuracy, spikes per neuron, synaptic events vs ANN MACs."""
    table = Table(
        title=title or f"{run.dataset}: ANN vs SNN ({run.n_samples} samples)",
        caption="per-sample means; syn. events = spikes x fan-out (accumulates)",
    )
    for col, justify in (
        ("model", "left"), ("acc %", "right"), ("Δ pts", "right"),
        ("spk/neuron", "right"), ("syn. events", "right"), ("ANN MACs", "right"),
        ("events/MAC", "right"),
    ):
        table.add_column(col, justify=justify)
    table.add_row("ANN", f"{100 * run.ann_accuracy:.2f}", "", "", "", _fmt_count(run.ann_macs), "")
    for name, res in run.schemes.items():
        ratio = res.synaptic_events / run.ann_macs if run.ann_macs else float("nan")
        table.add_row(
            name,
            f"{100 * res.accuracy:.2f}",
            f"{100 * (res.accuracy - run.ann_accuracy):+.2f}",
            f"{res.spikes_per_neuron:.3f}",
            _fmt_count(res.synaptic_events),
            _fmt_count(res.ann_macs),
            f"{ratio:.3f}",
        )
    return table
