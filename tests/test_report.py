"""compare -> results.json -> report.html: a fake registered scheme (hand-computed latency,
operations and energy), the real schemes on a small network, and the
HTML's structure (parses, every figure and table, no external URL)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import typer
from typer.testing import CliRunner

from spikecast.cli.entry import SpikecastGroup
from spikecast.cli.report import parse_scheme_params
from spikecast.cli.report import register as register_report
from spikecast.datasets.loaders import Dataset
from spikecast.ir.graph import Linear, Network, ReLU
from spikecast.measure.counts import layer_macs
from spikecast.measure.fidelity import ann_stage_activations
from spikecast.measure.opcounts import ann_workload
from spikecast.measure.readout import Readout
from spikecast.measure.result import LayerStats
from spikecast.report.compare import CompareConfig, compare, confusion_matrix
from spikecast.report.html import FIGURES, load_results, render
from spikecast.schemes import register, scheme_names, unregister
from spikecast.schemes.base import Calibration, OutputTrace, Recipe, SpikingModel, Summary

PJ = 1e-12


def _net() -> Network:
    g = torch.Generator().manual_seed(0)
    return Network(
        (Linear(torch.randn(6, 4, generator=g)), ReLU(), Linear(torch.randn(3, 6, generator=g))),
        ("fc1", "relu", "fc2"), (4,),
    )


def _data() -> Dataset:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(30, 4, generator=g)
    return Dataset("toy", x[:10], torch.randint(0, 3, (10,), generator=g), x[10:],
                   torch.randint(0, 3, (20,), generator=g), 3, "none")


class FakeModel(SpikingModel):
    """Predicts class 0 at step 1, then the ANN's class; outputs equal the ANN's."""

    scheme: ClassVar[str] = "fake"

    def neuron_spike_counts(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.full((len(x), 6), 2.0), torch.full((len(x), 3), 2.0)]

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor] | None:
        return ann_stage_activations(self.ann, x)

    def time_points(self) -> tuple[tuple[float, ...], str]:
        return (1.0, 2.0, 3.0, 4.0), "step"

    def new_tally(self) -> FakeTally:
        return FakeTally(self.ann)

    def simulate_batch(self, x: torch.Tensor, tally: Any) -> OutputTrace:
        # one spike for class 0 at step 1, then three for the ANN's class
        ann = torch.nn.functional.one_hot(self.ann(x).argmax(1), 3).double()
        first = torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 3).double()
        counts = torch.stack([first, 3 * ann, 3 * ann, 3 * ann], 1)
        return OutputTrace(counts, counts, counts[:, -1], counts[:, -1])


class FakeTally:
    def __init__(self, net: Network) -> None:
        self.net = net

    def summary(self, n_samples: int) -> Summary:
        stages = [s for s in self.net.stages() if s.synaptic]
        layers = tuple(LayerStats(s.name, s.neurons, 2.0 * s.neurons, 10.0 * (k + 1),
                                  layer_macs(s.layer, s.in_shape, s.out_shape))
                       for k, s in enumerate(stages))
        return Summary(layers=layers, time_steps=4)


class UnscaledModel(FakeModel):
    """A scheme whose outputs are known only up to a scale."""

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor] | None:
        return None


@dataclass(frozen=True)
class FakeCalibration(Calibration):
    pass


@dataclass(frozen=True)
class FakeRecipe(Recipe):
    name: ClassVar[str] = "fake"
    readout: Readout = Readout.COUNT_MEMBRANE
    calibration_type: ClassVar[type[Calibration]] = FakeCalibration

    def calibrate(self, net: Network, calib_x: torch.Tensor | None) -> Calibration:
        return FakeCalibration()

    def build(self, net: Network, calibration: Calibration) -> SpikingModel:
        return FakeModel(self, net, calibration)

    def legacy_calibration(self, net: Network, scales: Any, params: Any) -> Calibration:
        return FakeCalibration()


@dataclass(frozen=True)
class UnscaledRecipe(FakeRecipe):
    name: ClassVar[str] = "unscaled"

    def build(self, net: Network, calibration: Calibration) -> SpikingModel:
        return UnscaledModel(self, net, calibration)


@dataclass(frozen=True)
class BrokenRecipe(FakeRecipe):
    name: ClassVar[str] = "broken"

    def build(self, net: Network, calibration: Calibration) -> SpikingModel:
        raise ValueError("broken: Conv2d layers are not supported")


@pytest.fixture
def registered() -> Iterator[None]:
    for recipe in (FakeRecipe, UnscaledRecipe, BrokenRecipe):
        register(recipe)
    yield
    for recipe in (FakeRecipe, UnscaledRecipe, BrokenRecipe):
        unregister(recipe.name)


@pytest.fixture
def fake_results(registered: None) -> dict[str, Any]:
    return compare(_net(), _data(), CompareConfig(schemes=("fake", "broken")), "toy-net")


def test_fake_scheme_entry_golden(fake_results: dict[str, Any]) -> None:
    net, data = _net(), _data()
    entry = fake_results["schemes"]["fake"]
    ann_pred = net(data.x_test).argmax(1)
    # settles at step 1 when the ANN predicts class 0, else at step 2
    assert entry["latency"]["mean"] == pytest.approx(1 + float((ann_pred != 0).double().mean()))
    assert entry["latency"]["unit"] == "step"
    assert entry["effective_acs"] == 10.0 + 20.0
    assert entry["effective_macs"] == 0.0
    neurons = 6 + 3
    assert entry["neuron_updates"] == neurons * 4
    assert entry["activation_sparsity"] == pytest.approx(1 - 2 * neurons / (neurons * 4))
    ann = ann_workload(net, data.x_test)
    assert fake_results["ann"]["effective_macs"] == pytest.approx(ann.effective_macs)
    energy = entry["energy_J"]["cmos-45nm-fp32"]
    assert energy["ann"] == pytest.approx(ann.effective_macs * 4.6 * PJ)
    assert energy["snn"] == pytest.approx(30 * 0.9 * PJ + neurons * 4 * 0.9 * PJ)
    assert [f["correlation"] for f in entry["fidelity"]] == pytest.approx([1.0, 1.0])
    assert [sum(f["counts"]) for f in entry["firing"]] == [6, 3]
    assert [f["silent_fraction"] for f in entry["firing"]] == [0.0, 0.0]
    assert sum(map(sum, entry["confusion"])) == 20
    assert entry["confusion"] == confusion_matrix(ann_pred, data.y_test, 3)
    assert fake_results["failed"] == {"broken": "broken: Conv2d layers are not supported"}
    assert fake_results["skipped"] == {}
    json.dumps(fake_results)


def test_scheme_without_layer_outputs_reports_correlations_only(registered: None) -> None:
    results = compare(_net(), _data(), CompareConfig(schemes=("unscaled",)))
    entry = results["schemes"]["unscaled"]
    assert entry["fidelity"] and all(f["mae"] is None for f in entry["fidelity"])
    assert [sum(f["counts"]) for f in entry["firing"]] == [6, 3]
    render(results)


def test_confusion_matrix_golden() -> None:
    got = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 3)
    assert got == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.imgs: list[str] = []
        self.rows = 0
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "img":
            self.imgs.append(a["src"] or "")
        if tag == "tr":
            self.rows += 1
        self.urls += [v for k, v in attrs if k in ("href", "src") and v
                      and not v.startswith("data:")]


def _check_html(html: str, n_schemes: int) -> _Collector:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    assert "http://" not in html and "https://" not in html and not parser.urls
    assert {"schemes", "layers", "params"} | {fig_id for fig_id, _, _ in FIGURES} <= parser.ids
    # scheme table: header, ANN, schemes; layer table: header, 2 layers per scheme
    assert parser.rows == (1 + 1 + n_schemes) + (1 + 2 * n_schemes)
    for src in parser.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    return parser


def test_html_is_self_contained_with_every_figure(fake_results: dict[str, Any]) -> None:
    html = render(fake_results)
    parser = _check_html(html, 1)
    assert len(parser.imgs) == len(FIGURES)
    assert "failed" in parser.ids and "Conv2d layers are not supported" in html


def test_report_command_rerenders(fake_results: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(fake_results))
    app = typer.Typer(cls=SpikecastGroup)
    register_report(app)
    out = CliRunner().invoke(app, ["report", str(path)])
    assert out.exit_code == 0, out.output
    _check_html((tmp_path / "report.html").read_text(), 1)
    bad = tmp_path / "plain.json"
    bad.write_text(json.dumps({"dataset": "x"}))
    with pytest.raises(ValueError, match=r"extended results file.*field 'n_samples' is missing"):
        load_results(bad)
    assert CliRunner().invoke(app, ["report", str(bad)]).exit_code == 2


def test_parse_scheme_params() -> None:
    assert parse_scheme_params(["rate.steps=25", "ssnn.phase=random"], ("rate", "ssnn")) == {
        "rate": {"steps": 25}, "ssnn": {"phase": "random"}}
    with pytest.raises(ValueError, match=r"SCHEME\.KEY=VALUE"):
        parse_scheme_params(["steps=25"], ("rate",))
    with pytest.raises(ValueError, match="not among"):
        parse_scheme_params(["ssnn.x=1"], ("rate",))


def test_config_rejects_unknown_schemes() -> None:
    with pytest.raises(ValueError, match="unknown schemes"):
        CompareConfig(schemes=("spiky",))


def test_every_real_scheme_end_to_end() -> None:
    torch.manual_seed(0)
    net = Network((Linear(torch.randn(8, 4) * 0.8), ReLU(), Linear(torch.randn(3, 8) * 0.8)),
                  ("fc1", "relu", "fc2"), (4,))
    results = compare(net, _data(), CompareConfig(limit=12, fidelity_samples=6, batch_size=5),
                      "tiny")
    assert not results["failed"], results["failed"]
    assert set(results["schemes"]) == set(scheme_names())
    for name, entry in results["schemes"].items():
        assert entry["latency"]["mean"] is not None, name
        assert 0 <= entry["latency"]["mean"] <= entry["latency"]["window"], name
        assert len(entry["fidelity"]) == 2 and len(entry["firing"]) == 2, name
        assert sum(map(sum, entry["confusion"])) == 12, name
        acc_from_confusion = sum(entry["confusion"][i][i] for i in range(3)) / 12
        assert acc_from_confusion == pytest.approx(entry["accuracy"]), name
        assert entry["effective_acs"] == pytest.approx(entry["synaptic_events"]), name
    rate = results["schemes"]["rate"]
    # constant-current input: the first layer does nnz(x) x fan-out MACs, fan-out 8
    assert rate["effective_macs"] == pytest.approx(8 * float((_data().x_test[:12] != 0).sum()) / 12)
    _check_html(render(results), len(scheme_names()))


@pytest.mark.parametrize("scheme", ["rate", "ssnn", "sigma-delta"])
def test_every_scheme_returns_its_prediction_trace(scheme: str) -> None:
    from spikecast.ir.graph import Linear, Network, ReLU
    from spikecast.report.adapters import probe_layers
    from spikecast.schemes import convert, get_recipe

    g = torch.Generator().manual_seed(0)
    net = Network((Linear(torch.rand(6, 4, generator=g) - 0.3), ReLU(),
                   Linear(torch.rand(3, 6, generator=g) - 0.3)), ("h", "h.relu", "out"), (4,))
    x = torch.rand(12, 4, generator=g)
    y = torch.randint(0, 3, (12,), generator=g)
    snn = convert(net, get_recipe(scheme), calib_x=x)
    result = snn.evaluate(x, y)
    trace = result.trace
    assert trace is not None and trace.predictions.shape == (12, len(result.curve.x))
    assert list(trace.times) == result.curve.x
    # the curve is the trace's accuracy at every point, the result its last column's
    per_point = (trace.predictions == y[:, None]).double().mean(0).tolist()
    assert per_point == pytest.approx(result.curve.accuracy)
    assert result.accuracy == pytest.approx(per_point[-1])
    assert torch.equal(result.predictions, trace.predictions[:, -1])
    probe = probe_layers(snn, x[:3])
    assert [c.shape for c in probe.counts] == [(3, 6), (3, 3)]
    assert probe.scaled == (scheme != "ssnn")
