"""NIR export: threshold rule, charge scaling, node layout, dialects, metadata, refusals,
CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

nir = pytest.importorskip("nir")

from spikecast.cli.entry import SpikecastGroup  # noqa: E402
from spikecast.cli.nir import register  # noqa: E402
from spikecast.io.nir import export_nir, read_nir, write_nir  # noqa: E402
from spikecast.io.nir.dialect import convention  # noqa: E402
from spikecast.ir.graph import (  # noqa: E402
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Network,
    ReLU,
    canonicalize,
)
from spikecast.schemes import convert, get_recipe  # noqa: E402
from spikecast.schemes.rate import RateModel, RateRecipe  # noqa: E402


def _fc(gen_seed: int = 0) -> Network:
    g = torch.Generator().manual_seed(gen_seed)
    return Network(
        (Linear(torch.randn(5, 3, generator=g), torch.randn(5, generator=g)), ReLU(),
         Linear(torch.randn(2, 5, generator=g), None)),
        ("fc1", "act1", "fc2"), (3,),
    )


def _conv_pool(pool: type) -> Network:
    g = torch.Generator().manual_seed(1)
    return canonicalize(Network(
        (Conv2d(torch.randn(2, 1, 3, 3, generator=g), None, (1, 1), (1, 1)), ReLU(),
         pool((2, 2), (2, 2)), Flatten(), Linear(torch.randn(3, 8, generator=g), None)),
        ("conv", "act", "pool", "flat", "fc"), (1, 4, 4),
    ))


def _rate(net: Network, **params) -> RateModel:
    """NIR's IF starts at v = 0: exported models use ``v_init=0`` unless a test says so."""
    return convert(net, RateRecipe(normalization="none", **({"v_init": 0.0} | params)))


def _meta(graph) -> dict:
    return json.loads(graph.metadata["spikecast"])


@pytest.mark.parametrize("theta", [1.0, 0.7, 3.0, 1e-3])
def test_threshold_is_largest_float32_below_theta(theta):
    t32 = np.float32(theta)
    v_thr = convention("nir").v_threshold(theta)
    assert v_thr < t32 and np.nextafter(v_thr, np.float32(np.inf)) == t32
    # every float32 near theta: NIR's strict v > v_thr is spikecast's v >= theta
    v = np.array([np.nextafter(t32, np.float32(np.inf)), t32, v_thr,
                  np.nextafter(v_thr, np.float32(-np.inf)), t32 * 2, t32 / 2], dtype=np.float32)
    assert np.array_equal(v > v_thr, v >= t32)


def test_chain_layout_weights_and_if_parameters():
    net = _fc()
    model = _rate(net, reset="zero", threshold=0.5)
    g = export_nir(model)
    assert list(g.nodes) == ["input", "fc1", "act1", "fc2", "fc2_if", "output"]
    assert g.edges == [("input", "fc1"), ("fc1", "act1"), ("act1", "fc2"), ("fc2", "fc2_if"),
                       ("fc2_if", "output")]
    fc1, fc2 = g.nodes["fc1"], g.nodes["fc2"]
    # Affine for a Linear without bias too (sinabs reads no Linear), its bias zero
    assert isinstance(fc1, nir.Affine) and isinstance(fc2, nir.Affine)
    assert np.array_equal(fc2.bias, np.zeros(2)) and _meta(fc2) == {"bias": False}
    assert "spikecast" not in fc1.metadata
    # the input carries charge 1: first layer unchanged; spikes carry theta = 0.5
    assert np.array_equal(fc1.weight, net.layers[0].weight.numpy())
    assert np.array_equal(fc1.bias, net.layers[0].bias.numpy())
    assert np.array_equal(fc2.weight, net.layers[2].weight.numpy() * np.float32(0.5))
    for name, n in (("act1", 5), ("fc2_if", 2)):
        node = g.nodes[name]
        assert isinstance(node, nir.IF)
        assert np.array_equal(node.r, np.ones(n)) and np.array_equal(node.v_reset, np.zeros(n))
        assert np.all(node.v_threshold == np.nextafter(np.float32(0.5), np.float32(0)))
    meta = _meta(g)
    assert meta["dt"] == 1.0 and meta["approximations"] == []
    assert meta["recipe"]["threshold"] == 0.5 and meta["recipe"]["reset"] == "zero"
    assert np.array_equal(g.nodes["input"].output_type["output"], [3])


def test_conv_avgpool_flatten_nodes():
    model = _rate(_conv_pool(AvgPool2d), reset="zero", threshold=2.0)
    g = export_nir(model)
    types = [type(n).__name__ for n in g.nodes.values()]
    # the average pool is the equivalent convolution (none of the three peer readers
    # reads AvgPool2d alike); its name had a dot (canonicalize's "pool.relu")
    assert types == ["Input", "Conv2d", "IF", "Conv2d", "IF", "Flatten", "Affine", "IF",
                     "Output"]
    assert list(g.nodes)[4] == "pool_relu"
    conv = g.nodes["conv"]
    assert conv.stride == (1, 1) and conv.padding == (1, 1) and conv.dilation == (1, 1)
    assert conv.groups == 1 and np.array_equal(conv.bias, np.zeros(2))
    assert json.loads(conv.metadata["spikecast"]) == {"bias": False}
    pool = g.nodes["pool"]
    # spikes of theta = 2 enter the 2 x 2 mean: weight 2 / 4 on the channel diagonal
    want = np.zeros((2, 2, 2, 2), np.float32)
    want[0, 0] = want[1, 1] = 0.5
    assert np.array_equal(pool.weight, want) and np.array_equal(pool.bias, np.zeros(2))
    assert pool.stride == (2, 2) and pool.padding == (0, 0)
    assert _meta(pool) == {"layer": "AvgPool2d", "kernel_size": [2, 2], "stride": [2, 2],
                           "padding": [0, 0]}
    # negative dims: one sample flattened whether or not the reader counts the batch
    assert g.nodes["flat"].start_dim == -3 and g.nodes["flat"].end_dim == -1
    assert np.array_equal(g.nodes["flat"].output_type["output"], [8])
    # the pool's own population (canonicalized ReLU) feeds the Linear: scaled by theta
    assert np.array_equal(g.nodes["fc"].weight, model.network.layers[-1].weight.numpy() * 2)


def test_reset_subtract_refused_then_approximated():
    model = _rate(_fc())  # reset by subtraction, the default
    with pytest.raises(ValueError, match=r"subtraction.*reset='zero'.*'sinabs'.*approximate"):
        export_nir(model)
    g = export_nir(model, approximate=True)
    (change,) = _meta(g)["approximations"]
    assert change.startswith("reset by subtraction (v <- v - theta) written as reset to zero")
    assert all(np.all(n.v_reset == 0) for n in g.nodes.values() if isinstance(n, nir.IF))
    # the sinabs dialect resets by subtraction: exact, and reset to zero is the approximation
    assert _meta(export_nir(model, dialect="sinabs"))["approximations"] == []
    with pytest.raises(ValueError, match=r"reset to zero.*reset by subtraction"):
        export_nir(_rate(_fc(), reset="zero"), dialect="sinabs")


def test_maxpool_refused_then_sumpool_with_metadata():
    model = _rate(_conv_pool(MaxPool2d), reset="zero")
    with pytest.raises(ValueError, match=r"'pool'.*no max-pooling.*approximate=True"):
        export_nir(model)
    g = export_nir(model, approximate=True)
    pool = g.nodes["pool"]
    assert isinstance(pool, nir.Conv2d) and np.array_equal(pool.weight[:, :, 0, 0], np.eye(2))
    assert np.all(pool.weight == pool.weight[:, :, :1, :1])  # a sum over the window
    assert _meta(pool) == {
        "layer": "MaxPool2d", "kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]}
    (change,) = _meta(g)["approximations"]
    assert change.startswith("pool: spike-count gated MaxPool2d written as a sum-pool")


def test_sigma_delta_and_ssnn_models_refused():
    net = _fc()
    calib = torch.rand(8, 3)
    sd = convert(net, get_recipe("sigma-delta"), calib)
    with pytest.raises(ValueError, match=r"'sigma-delta'.*signed spikes"):
        export_nir(sd, approximate=True)
    ssnn = convert(net, get_recipe("ssnn"), calib)
    with pytest.raises(ValueError, match=r"'ssnn'.*PWM input"):
        export_nir(ssnn)


def test_networks_the_simulator_rejects_are_refused():
    g = torch.Generator().manual_seed(0)
    net = Network((Linear(torch.randn(3, 3, generator=g)), ReLU(),
                   Linear(torch.randn(4, 3, generator=g)), Linear(torch.randn(2, 4, generator=g))),
                  ("fc", "act", "a", "b"), (3,))
    with pytest.raises(ValueError, match=r"'b'.*receives the current of a layer without ReLU"):
        export_nir(_rate(net, reset="zero"))


def test_write_nir_reads_back(tmp_path: Path):
    model = _rate(_fc(), reset="zero")
    path = write_nir(model, tmp_path / "sub" / "fc.nir")
    g = nir.read(path)
    assert sorted(g.edges) == sorted(export_nir(model).edges)  # HDF5 sorts the node names
    assert np.array_equal(g.nodes["fc2"].weight, model.network.layers[2].weight.numpy())
    assert _meta(g)["recipe"] == model.recipe.params()


def test_cli_export_nir(tmp_path: Path):
    net = _conv_pool(MaxPool2d)
    snn = tmp_path / "m.spikecast"
    params = get_recipe("rate", reset="zero", normalization="none", v_init=0.0).params()
    convert(net, RateRecipe(**params)).save(snn)
    app = typer.Typer(cls=SpikecastGroup)
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps export-nir a subcommand
    runner = CliRunner()
    refused = runner.invoke(app, ["export-nir", str(snn), str(tmp_path / "m.nir"), "--exact"])
    assert refused.exit_code == 2 and "max-pooling" in refused.output
    assert not (tmp_path / "m.nir").exists()
    ok = runner.invoke(app, ["export-nir", str(snn), str(tmp_path / "m.nir")])
    assert ok.exit_code == 0, ok.output
    assert "approximated: pool" in ok.output and "for an exact file" in ok.output
    assert _meta(nir.read(tmp_path / "m.nir").nodes["pool"])["layer"] == "MaxPool2d"
    bad = runner.invoke(app, ["export-nir", str(snn), str(tmp_path / "x.nir"), "--dialect", "x"])
    assert bad.exit_code == 2 and "allowed: 'nir', 'snntorch', 'sinabs'" in bad.output


def _residual(weights: tuple[float, float]) -> Network:
    """fc1 -> act1 -> fc2 (no ReLU) -> add(fc2, act1) -> act2 -> fc3."""
    g = torch.Generator().manual_seed(4)
    return Network(
        (Linear(torch.rand(4, 3, generator=g), torch.rand(4, generator=g) * 0.1), ReLU(),
         Linear(torch.rand(4, 4, generator=g) - 0.3), Add(weights), ReLU(),
         Linear(torch.rand(2, 4, generator=g))),
        ("fc1", "act1", "fc2", "add", "act2", "fc3"), (3,),
        ((-1,), (0,), (1,), (2, 1), (3,), (4,)),
    )


def test_add_population_sums_edges_with_scaled_skip():
    net = _residual((1.0, 0.5))
    g = export_nir(_rate(net, reset="zero", threshold=2.0))
    # the skip spikes carry theta = 2 and pass the Add with weight 0.5: factor 1, no Scale;
    # fc2's current (weight 1) and the skip spikes are summed by the edges into act2
    assert sorted(g.edges) == sorted([
        ("input", "fc1"), ("fc1", "act1"), ("act1", "fc2"), ("act1", "act2"),
        ("fc2", "act2"), ("act2", "fc3"), ("fc3", "fc3_if"), ("fc3_if", "output")])
    assert isinstance(g.nodes["act2"], nir.IF)
    assert np.array_equal(g.nodes["fc2"].weight, net.layers[2].weight.numpy() * 2)
    g2 = export_nir(_rate(_residual((0.25, 1.0)), reset="zero", threshold=2.0))
    assert ("fc2", "add_in0") in g2.edges and ("add_in1", "act2") in g2.edges
    assert np.all(g2.nodes["add_in0"].scale == 0.25) and np.all(g2.nodes["add_in1"].scale == 2.0)


def test_concat_refused():
    g = torch.Generator().manual_seed(5)
    net = Network(
        (Linear(torch.rand(2, 3, generator=g)), ReLU(), Linear(torch.rand(2, 3, generator=g)),
         ReLU(), Concat((1.0, 1.0)), Linear(torch.rand(2, 4, generator=g))),
        ("a", "ra", "b", "rb", "cat", "out"), (3,),
        ((-1,), (0,), (-1,), (2,), (1, 3), (4,)),
    )
    with pytest.raises(ValueError, match=r"'cat': NIR has no concatenation node"):
        export_nir(_rate(net, reset="zero"))


def test_cli_without_nir_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Registering the command must not import nir; running it without nir fails clearly."""
    import importlib
    import sys

    for mod in [m for m in sys.modules if m == "nir" or m.startswith("spikecast.io.nir")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "nir", None)  # import nir -> ImportError
    cli = importlib.import_module("spikecast.cli.nir")
    app = typer.Typer(cls=SpikecastGroup)
    cli.register(app)
    app.command("noop")(lambda: None)
    net = _fc()
    snn = tmp_path / "m.spikecast"
    params = get_recipe("rate", reset="zero", normalization="none", v_init=0.0).params()
    convert(net, RateRecipe(**params)).save(snn)
    result = CliRunner().invoke(app, ["export-nir", str(snn), str(tmp_path / "m.nir")])
    assert result.exit_code == 2 and "needs the nir package" in result.output


def test_network_ending_in_relu_exports_and_round_trips(tmp_path: Path):
    net = Network(
        (Linear(torch.tensor([[0.5, 0.25], [0.75, -0.5]])), ReLU(),
         Linear(torch.tensor([[1.0, 0.5]])), ReLU()),
        ("fc1", "relu1", "fc2", "relu2"), (2,),
    )
    recipe = RateRecipe(normalization="none", steps=12, reset="zero", v_init=0.0)
    model = recipe.build(net, recipe.calibrate(net, None))
    back = read_nir(write_nir(model, tmp_path / "r.nir"))
    x = torch.tensor([[1.0, 0.5], [0.2, 0.9]])
    a, b = model.simulate(x), back.simulate(x)
    for ca, cb in zip(a.counts, b.counts, strict=True):
        assert torch.equal(ca, cb) and ca.sum() > 0


def test_initial_membrane_refused_then_approximated_and_restored():
    model = _rate(_fc(), reset="zero", v_init=0.5)
    with pytest.raises(ValueError, match=r"starts at v = 0.*v_init = 0.5.*approximate=True"):
        export_nir(model)
    g = export_nir(model, approximate=True)
    (change,) = _meta(g)["approximations"]
    assert "v_init = 0.5" in change
    assert read_nir(g).recipe.v_init == 0.5  # spikecast's own recipe comes back
    foreign = export_nir(_rate(_fc(), reset="zero"))
    foreign.metadata.pop("spikecast")
    assert read_nir(foreign).recipe.v_init == 0.0  # NIR's IF starts at 0
