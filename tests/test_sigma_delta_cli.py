"""The sigma-delta typer commands, on a local app (the lead wires ``register``)."""

import json
from pathlib import Path

import pytest
import typer
from mnist_data import FULL_MNIST, requires_full_mnist
from typer.testing import CliRunner

from spikecast.cli.entry import SpikecastGroup
from spikecast.cli.sigma_delta import register, table
from spikecast.papers.sigma_delta_yousefzadeh.reproduce import PAPER


def make_app():
    app, reproduce_app = typer.Typer(cls=SpikecastGroup), typer.Typer()
    app.add_typer(reproduce_app, name="reproduce")
    register(app, reproduce_app)
    return app


def test_help_lists_the_options():
    result = CliRunner().invoke(make_app(), ["reproduce", "sigma-delta-mnist", "--help"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--limit", "--json", "--out", "--data-dir", "--seed", "--theta",
                   "--calibrated", "--finetune"):
        assert option in result.output
    assert "sigma-delta-figures" in CliRunner().invoke(make_app(), ["--help"]).output


def test_table_puts_paper_numbers_beside_ours():
    report = {"n_samples": 10, "paper": PAPER, "rows": [
        {"scheme": "sigma-delta", "threshold": 1.0, "model": "mnist-cnn", "accuracy": 0.5,
         "spikes_per_neuron": 0.1, "synaptic_updates": 1000.0},
        {"scheme": "rate", "steps": 15, "model": "mnist-cnn", "accuracy": 0.25,
         "spikes_per_neuron": 0.2, "synaptic_updates": 10.0},
    ]}
    cells = [list(c.cells) for c in table(report).columns]
    assert cells[3] == ["50.00%", "25.00%"]
    assert cells[4] == ["99.19%", "98.80%"]
    assert cells[6] == ["0.25", "0.26"]


@pytest.mark.slow
@requires_full_mnist
def test_reproduce_small_run_writes_json(tmp_path: Path):
    data_dir = str(FULL_MNIST)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(make_app(), [
        "reproduce", "sigma-delta-mnist", "--limit", "20", "--no-rate", "--theta", "1.0",
        "--data-dir", data_dir, "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["n_samples"] == 20
    assert report["ann_macs"] == 1_043_712 and report["ann_macs_paper_formula"] == 455_712
    assert [r["scheme"] for r in report["rows"]] == ["qann", "sigma-delta"]
    assert 0 <= report["rows"][1]["spikes_per_neuron"] < 5
