"""compare -> results.json -> report.html: a fake scheme implementing the protocols (hand-
computed latency, operations and energy), the real schemes on a small network, and the
HTML's structure (parses, every figure and table, no external URL)."""

import base64
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import typer
from typer.testing import CliRunner

import spikecast.report.compare as compare_module
from spikecast.cli.entry import SpikecastGroup
from spikecast.cli.report import parse_scheme_params, register
from spikecast.datasets.loaders import Dataset
from spikecast.ir.graph import Linear, Network, ReLU
from spikecast.ir.normalize import Normalized
from spikecast.measure.counts import ann_macs, layer_macs
from spikecast.measure.fidelity import ann_stage_activations
from spikecast.measure.latency import PredictionTrace
from spikecast.measure.opcounts import ann_workload
from spikecast.measure.result import Curve, LayerStats, SchemeResult
from spikecast.report.compare import CompareConfig, compare, confusion_matrix
from spikecast.report.html import FIGURES, load_results, render
from spikecast.schemes import RECIPES
from spikecast.schemes.base import Recipe, SpikingModel

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

    def __init__(self, net: Network) -> None:
        self.net = net

    def prediction_trace(self, x: torch.Tensor) -> PredictionTrace:
        ann = self.net(x).argmax(1)
        preds = torch.stack([torch.zeros_like(ann), ann, ann, ann], 1)
        return PredictionTrace((1.0, 2.0, 3.0, 4.0), preds, "step")

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        return ann_stage_activations(self.net, x)

    def neuron_spike_counts(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.full((len(x), 6), 2.0), torch.full((len(x), 3), 2.0)]

    def evaluate(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256,
                 progress: bool = False) -> SchemeResult:
        preds = self.prediction_trace(x).predictions
        acc = [float((preds[:, k] == y).double().mean()) for k in range(4)]
        stages = [s for s in self.net.stages() if s.synaptic]
        layers = [LayerStats(s.name, s.neurons, 2.0 * s.neurons, 10.0 * (k + 1),
                             layer_macs(s.layer, s.in_shape, s.out_shape))
                  for k, s in enumerate(stages)]
        return SchemeResult("fake", acc[-1], len(x), layers, ann_macs(self.net),
                            Curve("step", [1.0, 2.0, 3.0, 4.0], acc), {}, {"steps": 4})


class FakeRecipe(Recipe):
    name: ClassVar[str] = "fake"

    def normalize(self, net: Network, calib_x: torch.Tensor | None) -> Normalized:
        return Normalized(net, tuple(1.0 for _ in net.layers))

    def replace(self, normalized: Normalized, ann: Network) -> FakeModel:
        return FakeModel(ann)


class PlainModel(SpikingModel):
    """A scheme exposing nothing beyond ``evaluate``."""

    scheme: ClassVar[str] = "plain"

    def __init__(self, net: Network) -> None:
        self.inner = FakeModel(net)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256,
                 progress: bool = False) -> SchemeResult:
        return self.inner.evaluate(x, y)


class PlainRecipe(FakeRecipe):
    def replace(self, normalized: Normalized, ann: Network) -> PlainModel:
        return PlainModel(ann)


class BrokenRecipe(FakeRecipe):
    def replace(self, normalized: Normalized, ann: Network) -> FakeModel:
        raise ValueError("broken: Conv2d layers are not supported")


@pytest.fixture
def fake_results(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setitem(RECIPES, "fake", f"{__name__}:FakeRecipe")
    monkeypatch.setitem(RECIPES, "broken", f"{__name__}:BrokenRecipe")
    recipes = {"fake": FakeRecipe, "broken": BrokenRecipe}
    monkeypatch.setattr(compare_module, "get_recipe", lambda name, **p: recipes[name]())
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
    json.dumps(fake_results)


def test_scheme_without_protocols_still_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(RECIPES, "plain", f"{__name__}:PlainRecipe")
    monkeypatch.setattr(compare_module, "get_recipe", lambda name, **p: PlainRecipe())
    results = compare(_net(), _data(), CompareConfig(schemes=("plain",)))
    entry = results["schemes"]["plain"]
    assert entry["latency"]["mean"] is None
    assert entry["latency"]["accuracy_at"]["1"] == pytest.approx(entry["accuracy"])
    assert entry["fidelity"] == [] and entry["firing"] == [] and entry["confusion"] is None
    html = render(results)
    for message in ("no scheme result carries a confusion matrix",
                    "no scheme reports per-layer outputs", "no scheme reports per-neuron"):
        assert message in html


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
    register(app)
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
    assert set(results["schemes"]) == set(RECIPES)
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
    _check_html(render(results), len(RECIPES))


@pytest.mark.parametrize("scheme", ["rate", "ssnn", "sigma-delta"])
def test_every_scheme_returns_its_prediction_trace(scheme: str) -> None:
    from spikecast.ir.graph import Linear, Network, ReLU
    from spikecast.report.adapters import probe_layers, scheme_readouts
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
    reads = scheme_readouts(snn, result, x)
    assert torch.equal(reads.final, trace.predictions[:, -1])
    probe = probe_layers(snn, x[:3])
    assert [c.shape for c in probe.counts] == [(3, 6), (3, 3)]
    assert probe.scaled == (scheme != "ssnn")
