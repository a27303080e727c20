"""The demo end to end: every registered scheme runs and the results contract holds."""

import json

from typer.testing import CliRunner

from spikecast.cli.main import app
from spikecast.schemes import scheme_names


def test_demo_writes_results_and_plot(tmp_path) -> None:
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--limit", "40", "--quiet"])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["dataset"] == "wine" and data["n_samples"] == 40
    assert data["ann"]["macs"] == 13 * 30 + 30 * 3
    assert 0.8 <= data["ann"]["accuracy"] <= 1.0
    assert set(data["schemes"]) == set(scheme_names())
    for name, entry in data["schemes"].items():
        assert 0.0 <= entry["accuracy"] <= 1.0, name
        assert entry["spikes_per_neuron"] > 0, name
        assert entry["synaptic_events"] > 0, name
        assert entry["ann_macs"] == 480, name
        assert len(entry["curve"]["x"]) == len(entry["curve"]["accuracy"]) > 1, name
        assert name in res.output
    png = (tmp_path / "accuracy_vs_time.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "http://" not in html and "https://" not in html
    for name in scheme_names():
        assert name in html
        assert "energy_J" in data["schemes"][name] and "latency" in data["schemes"][name]
