"""One self-contained HTML report from an extended results dict: the scheme table, and
every figure of :mod:`spikecast.report.figures` embedded as a base64 PNG (no external URL,
script or stylesheet)."""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

from spikecast.errors import SpikecastError
from spikecast.io.atomic import write_json, write_text
from spikecast.io.schema import ANN_RESULTS, RESULTS, SCHEME_RESULTS, check_fields
from spikecast.report import figures

Results = dict[str, Any]

FIGURES = (
    ("accuracy-vs-time", "Accuracy vs time", figures.accuracy_vs_time),
    ("accuracy-vs-spikes", "Accuracy vs spikes", figures.accuracy_vs_spikes),
    ("accuracy-vs-ops", "Accuracy vs operations", figures.accuracy_vs_ops),
    ("fidelity", "Per-layer fidelity (SNN output vs ANN activation)", figures.fidelity),
    ("firing", "Per-layer firing histograms", figures.firing_histograms),
    ("confusion", "Confusion matrix of the best scheme", figures.confusion),
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 1em; vertical-align: top; }
.note { color: #666; font-size: 0.85em; }
"""


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _energy(joules: float | None) -> str:
    if joules is None:
        return "n/a"
    for scale, unit in ((1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ")):
        if joules >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{joules / 1e-12:.3g} pJ"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def scheme_table(results: Results) -> str:
    """The scheme table: accuracy, latency, spikes, operations and energy per preset."""
    presets = list(results.get("energy_presets", {}))
    ann = results["ann"]
    head = ["model", "readout", "accuracy %", "Δ vs ANN (pts)",
            "spike-count accuracy % (ties wrong)", "tied %", "latency (mean)",
            "acc. @ 50% window",
            "spikes / neuron", "activation sparsity %", "effective ACs", "effective MACs",
            "ops / ANN eff. MACs"] + [f"energy {p} (SNN / ANN)" for p in presets]
    rows = [[
        "ANN", "argmax", _pct(ann["accuracy"]), "", "", "", "", "", "",
        _pct(ann["activation_sparsity"]),
        _num(ann["effective_acs"]), _num(ann["effective_macs"]), "1",
    ] + [_energy(ann["energy_J"].get(p)) for p in presets]]
    for name, e in results["schemes"].items():
        lat = e["latency"]
        ops = e["effective_acs"] + e["effective_macs"]
        ratio = ops / ann["effective_macs"] if ann["effective_macs"] else None
        rows.append([
            name, e["readout"], _pct(e["accuracy"]),
            f"{100 * (e['accuracy'] - ann['accuracy']):+.2f}", _pct(e["accuracy_spike_count"]),
            _pct(e["tied_fraction"]),
            f"{_num(lat['mean'], '{:.3g}')} {lat['unit'] or ''}",
            _pct(lat["accuracy_at"].get("0.5")), f"{e['spikes_per_neuron']:.3f}",
            _pct(e["activation_sparsity"]), _num(e["effective_acs"]),
            _num(e["effective_macs"]), _num(ratio, "{:.3f}"),
        ] + [f"{_energy(e['energy_J'][p]['snn'])} / {_energy(e['energy_J'][p]['ann'])}"
             for p in presets])
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table id="schemes"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def layer_table(results: Results) -> str:
    """Per scheme and synaptic layer: spikes per neuron, ACs, MACs, fidelity to the ANN."""
    head = ["scheme", "layer", "neurons", "spikes / neuron", "effective ACs", "effective MACs",
            "correlation", "MAE", "MAE / mean |ANN|"]
    rows = []
    for name, e in results["schemes"].items():
        fidelity = {f["name"]: f for f in e.get("fidelity", [])}
        for stats, ops in zip(e["layers"], e["workload"]["layers"], strict=True):
            fid = fidelity.get(stats["name"], {})
            rows.append([
                name, stats["name"], f"{stats['neurons']:,}", f"{stats['spikes_per_neuron']:.3f}",
                _num(ops["effective_acs"]), _num(ops["effective_macs"]),
                _num(fid.get("correlation"), "{:.3f}"), _num(fid.get("mae"), "{:.3g}"),
                _num(fid.get("relative_mae"), "{:.3f}"),
            ])
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table id="layers"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def _figure(fig_id: str, title: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="{fig_id}"><img alt="{escape(title)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{escape(title)}</figcaption>'
            "</figure>")


def render(results: Results) -> str:
    """The whole report as one HTML string."""
    ann = results["ann"]
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>spikecast report: {escape(results['dataset'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{escape(results.get('model') or 'model')} on {escape(results['dataset'])}: "
        f"ANN vs spiking schemes</h1>",
        f"<p>{results['n_samples']} test samples. Network: {results['network']['neurons']:,} "
        f"neurons, {results['network']['synapses']:,} synapses, connection sparsity "
        f"{_pct(ann['connection_sparsity'])} %, footprint {ann['footprint_bytes']:,} bytes, "
        f"dense ANN MACs {ann['macs']:,}.</p>",
        scheme_table(results),
        '<p class="note">Operation counts follow NeuroBench (effective MACs/ACs skip zero '
        "inputs and weights; an AC has a spike input). Latency: mean time after which a "
        "sample's prediction stops changing.</p>",
    ]
    if results.get("skipped"):
        items = "".join(f"<li><b>{escape(n)}</b>: skipped, {escape(m)}</li>"
                        for n, m in results["skipped"].items())
        parts.append("<h2>Schemes that do not apply to this model</h2>"
                     f'<ul id="skipped">{items}</ul>')
    if results.get("failed"):
        items = "".join(f"<li><b>{escape(n)}</b>: {escape(m)}</li>"
                        for n, m in results["failed"].items())
        parts.append(f'<h2>Schemes that could not run</h2><ul id="failed">{items}</ul>')
    parts.append("<h2>Per layer</h2>" + layer_table(results))
    parts.append("<h2>Figures</h2>")
    for fig_id, title, draw in FIGURES:
        try:
            parts.append(_figure(fig_id, title, draw(results)))
        except ValueError as exc:
            parts.append(f'<p id="{fig_id}" class="note">{escape(title)}: {escape(str(exc))}</p>')
    params = "".join(
        f"<li><b>{escape(n)}</b> ({_num(e.get('wall_s'), '{:.1f}')} s): <code>"
        f"{escape(json.dumps(e.get('params', {}), default=str))}</code></li>"
        for n, e in results["schemes"].items()
    )
    parts.append(f'<h2>Scheme parameters</h2><ul id="params">{params}</ul>')
    sources = "".join(f"<li><b>{escape(n)}</b>: {escape(s)}</li>"
                      for n, s in results.get("energy_presets", {}).items())
    parts.append(f"<h2>Energy presets</h2><ul>{sources}</ul></body></html>")
    return "\n".join(parts)


def write_report(results: Results, path: str | Path) -> Path:
    """Render ``results`` to the HTML file ``path``."""
    return write_text(path, render(results))


def save_comparison(results: Results, out: str | Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``report.html`` into the folder ``out``."""
    out = Path(out)
    return write_json(out / "results.json", results), write_report(results, out / "report.html")


def load_results(path: str | Path) -> Results:
    """An extended results.json; ``ValueError`` if it lacks the report's fields."""
    path = Path(path)
    try:
        results = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpikecastError(f"{path}: cannot read results JSON: {exc}") from None
    where = f"{path} (an extended results file: write one with `spikecast compare`)"
    check_fields(results, RESULTS, where)
    check_fields(results["ann"], ANN_RESULTS, f"{where}, 'ann'")
    for name, entry in results["schemes"].items():
        check_fields(entry, SCHEME_RESULTS, f"{where}, scheme {name!r}")
    return results
