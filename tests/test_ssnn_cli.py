"""The SSNN typer commands on a local app: reproduce ssnn-wine, ssnn-sweep, help and errors."""

import json

import pytest
import typer
from typer.testing import CliRunner

from spikecast.cli.entry import SpikecastGroup
from spikecast.cli.ssnn import parse_settings, parse_sweep_values, register


@pytest.fixture(scope="module")
def app():
    main = typer.Typer(cls=SpikecastGroup)
    reproduce = typer.Typer()
    main.add_typer(reproduce, name="reproduce")
    register(main, reproduce)
    return main


def test_help_lists_commands(app):
    runner = CliRunner()
    out = runner.invoke(app, ["reproduce", "--help"]).output
    assert "ssnn-wine" in out and "ssnn-mnist" in out
    sweep_help = runner.invoke(app, ["ssnn-sweep", "--help"]).output
    assert "mismatch_pct" in sweep_help


def test_reproduce_wine_writes_json_and_trace(app, tmp_path):
    json_file = tmp_path / "wine.json"
    png = tmp_path / "trace.png"
    result = CliRunner().invoke(app, [
        "reproduce", "ssnn-wine", "--limit", "40", "--epochs", "200", "--json", str(json_file),
        "--trace-png", str(png), "--set", "window=2e-6",
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(json_file.read_text())
    for key in ("ann_accuracy", "snn_accuracy", "power_W", "energy_per_classification_J",
                "activity_energy_J", "spikes_per_neuron"):
        assert key in data
    assert data["n_samples"] == 40
    assert data["paper"]["power_W"] == 1.424e-3
    assert data["energy_per_classification_J"] == pytest.approx(data["power_W"] * 2e-6)
    assert png.stat().st_size > 0


def test_sweep_writes_json_and_png(app, tmp_path):
    result = CliRunner().invoke(app, [
        "ssnn-sweep", "--param", "current_scale", "--values", "0.5,1", "--limit", "30",
        "--out", str(tmp_path), "--set", "window=1e-6",
    ])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "ssnn_sweep_current_scale.json").read_text())
    assert data["values"] == [0.5, 1.0] and len(data["accuracy"]) == 2
    assert data["spikes_per_neuron"][0] < data["spikes_per_neuron"][1]
    assert (tmp_path / "ssnn_sweep_current_scale.png").stat().st_size > 0


def test_sweep_rejects_unknown_parameter(app, tmp_path):
    result = CliRunner().invoke(app, ["ssnn-sweep", "--param", "color", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "'color'" in result.output


def test_parse_settings():
    assert parse_settings(["window=1e-5", "phase=random"]) == {"window": 1e-5, "phase": "random"}
    with pytest.raises(typer.BadParameter, match="KEY=VALUE"):
        parse_settings(["window"])


@pytest.mark.parametrize(("text", "want"), [
    ("0.5,1,2,5", [0.5e-6, 1e-6, 2e-6, 5e-6]),  # bare numbers are microseconds
    ("5us, 0.5ms,2e-6s,100ns,3µs", [5e-6, 0.5e-3, 2e-6, 100e-9, 3e-6]),
])
def test_sweep_times_are_microseconds_or_carry_a_unit(text, want):
    assert parse_sweep_values("window", text) == pytest.approx(want, rel=1e-12)
    assert parse_sweep_values("current_scale", "0.5,2") == [0.5, 2.0]


@pytest.mark.parametrize(("param", "text", "needle"), [
    ("window", "5 minutes", "not a number; times take a unit among s, ms, us"),
    ("window", "-1us", "must be > 0"),
    ("current_scale", "5us", "'5us' is not a number"),
    ("window", " , ", "at least one value"),
])
def test_sweep_values_refusals(param, text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_sweep_values(param, text)


def test_sweep_warns_over_one_millisecond(app, tmp_path):
    result = CliRunner().invoke(app, [
        "ssnn-sweep", "--param", "window", "--values", "1,2ms", "--limit", "4",
        "--mc-seeds", "1", "--out", str(tmp_path),
    ])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning: window 0.002 s (= 2 ms) is over 1 ms" in text
    data = json.loads((tmp_path / "ssnn_sweep_window.json").read_text())
    assert data["values"] == pytest.approx([1e-6, 2e-3])
