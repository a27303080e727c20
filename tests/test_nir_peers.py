"""The NIR interop matrix against the peer tools (snnTorch 1.0.0, norse 1.1.0, sinabs 3.1.3,
installed with ``--no-deps`` by ``make install``): spikecast's files run in each tool with
spike counts identical to spikecast's, population by population, and graphs each tool
writes read into spikecast with the counts of the tool's own run. Differences in semantics
(sinabs' several spikes per step) are checked as such."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")

from nir_peers import (  # noqa: E402
    norse_counts,
    norse_run,
    sinabs_counts,
    sinabs_run,
    snntorch_counts,
    snntorch_run,
)

from spikecast.io.nir import export_nir, read_nir, write_graph, write_nir  # noqa: E402
from spikecast.ir.graph import (  # noqa: E402
    AvgPool2d,
    Conv2d,
    Flatten,
    Linear,
    Network,
    ReLU,
    canonicalize,
)
from spikecast.schemes import convert  # noqa: E402
from spikecast.schemes.rate import RateModel, RateRecipe  # noqa: E402


def _mlp(seed: int, scale: float = 1.0, low: float = -0.15) -> Network:
    """8 -> 16 -> 4 with dotted layer names (as torch.fx names nested modules)."""
    g = torch.Generator().manual_seed(seed)
    return Network(
        (Flatten(),
         Linear((torch.rand(16, 8, generator=g) * 0.6 + low) * scale,
                torch.rand(16, generator=g) * 0.1 * scale), ReLU(),
         Linear((torch.rand(4, 16, generator=g) * 0.5 + low) * scale)),
        ("flat", "body.fc1", "body.act1", "head.fc"), (2, 4),
    )


def _cnn(seed: int) -> Network:
    """conv -> IF -> 2x2 mean -> IF -> flatten -> linear, the pool's population inserted by
    canonicalize (named "pool.relu")."""
    g = torch.Generator().manual_seed(seed)
    return canonicalize(Network(
        (Conv2d(torch.rand(2, 1, 3, 3, generator=g) * 0.5, torch.rand(2, generator=g) * 0.1,
                (1, 1), (1, 1)), ReLU(), AvgPool2d((2, 2), (2, 2)), Flatten(),
         Linear(torch.rand(3, 8, generator=g) * 0.6 - 0.1)),
        ("conv", "act", "pool", "flat", "fc"), (1, 4, 4),
    ))


def _model(net: Network, reset: str, theta: float = 1.0, steps: int = 30) -> RateModel:
    return convert(net, RateRecipe(steps=steps, normalization="none", reset=reset,
                                   threshold=theta, v_init=0.0))


def _same(ours: tuple[torch.Tensor, ...], theirs: list[torch.Tensor], least: float) -> None:
    assert all(c.sum() >= least for c in ours), [float(c.sum()) for c in ours]
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b.reshape(a.shape))


MLP_NODES = ("body_act1", "head_fc_if")
CNN_NODES = ("act", "pool_relu", "fc_if")


@pytest.mark.parametrize("theta", [1.0, 0.5])
@pytest.mark.parametrize(("net", "nodes", "shape"), [
    (_mlp(0), MLP_NODES, (2, 4)), (_cnn(1), CNN_NODES, (1, 4, 4))], ids=["mlp", "cnn"])
def test_snntorch_runs_the_snntorch_dialect_exactly(net, nodes, shape, theta):
    """Leak-free LIF nodes become Leaky(beta=1, reset to zero): snnTorch spikes as spikecast
    does; theta = 0.5 exercises the charge folded into the next weights."""
    pytest.importorskip("snntorch")
    model = _model(net, "zero", theta)
    x = torch.rand(5, *shape, generator=torch.Generator().manual_seed(2))
    graph = export_nir(model, dialect="snntorch")
    _same(model.simulate(x).counts, snntorch_counts(graph, x, 30, nodes), 20)


@pytest.mark.parametrize("theta", [1.0, 0.5])
def test_norse_runs_the_nir_dialect_cnn_exactly(theta):
    """Conv2d, the pool as a convolution, the negative-dim Flatten on a batch of 5."""
    pytest.importorskip("norse")
    model = _model(_cnn(3), "zero", theta)
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    _same(model.simulate(x).counts, norse_counts(export_nir(model), x, 30, CNN_NODES), 20)


def test_norse_runs_dotted_names_on_a_batch():
    """Dotted names made norse see several input nodes; Flatten(start_dim=0) flattened the
    batch. Both fixed: one batch of 6 in one call."""
    pytest.importorskip("norse")
    model = _model(_mlp(5), "zero")
    x = torch.rand(6, 2, 4, generator=torch.Generator().manual_seed(6))
    _same(model.simulate(x).counts, norse_counts(export_nir(model), x, 30, MLP_NODES), 20)


def test_sinabs_runs_the_sinabs_dialect_with_reset_by_subtraction():
    """sinabs' IAF (v >= v_thr, v <- v - v_thr) is spikecast's default neuron when no step
    brings v to 2 theta (sinabs would fire twice) or below -theta (its floor): non-negative
    weights keeping every current below theta."""
    pytest.importorskip("sinabs")
    model = _model(_mlp(7, scale=0.25, low=0.0), "subtract")
    x = torch.rand(4, 2, 4, generator=torch.Generator().manual_seed(8))
    graph = export_nir(model, dialect="sinabs")
    _same(model.simulate(x).counts, sinabs_counts(graph, x, 30, MLP_NODES), 10)


def test_sinabs_fires_several_spikes_per_step_where_spikecast_fires_one():
    """The listed difference: a current above 2 theta makes sinabs' MultiSpike emit several
    spikes in one step; spikecast's IF fires at most once per step (counts <= steps)."""
    pytest.importorskip("sinabs")
    model = _model(_mlp(9, scale=6.0, low=0.0), "subtract", steps=10)
    x = torch.rand(3, 2, 4, generator=torch.Generator().manual_seed(10))
    ours = model.simulate(x).counts[0]
    theirs = sinabs_counts(export_nir(model, dialect="sinabs"), x, 10, MLP_NODES)[0]
    assert ours.max() <= 10 < theirs.max()


def test_nir_1_0_4_reads_the_sinabs_dialect_only(tmp_path: Path):
    """sinabs pins nir <= 1.0.4, whose IF has no v_reset field (and means reset by
    subtraction): the sinabs dialect drops the field, the standard dialect keeps it."""
    old = Path(sys.prefix) / "nir-1.0.4"
    if not old.is_dir():
        pytest.skip(f"nir 1.0.4 not installed in {old} (make install puts it there)")
    model = _model(_mlp(11), "subtract")
    paths = [write_nir(model, tmp_path / "sinabs.nir", dialect="sinabs"),
             write_nir(model, tmp_path / "nir.nir", approximate=True)]
    code = ("import sys, nir; g = nir.read(sys.argv[1]); "
            "print(type(g.nodes['body_act1']).__name__, nir.__file__)")
    env = dict(os.environ, PYTHONPATH=str(old))
    ok, refused = (subprocess.run([sys.executable, "-c", code, str(p)], env=env,
                                  capture_output=True, text=True) for p in paths)
    assert ok.returncode == 0 and ok.stdout.startswith("IF ") and str(old) in ok.stdout
    assert refused.returncode != 0 and "v_reset" in refused.stderr
    # nir >= 1.0.5 reads the missing field as 0; spikecast restores the recipe's reset
    back = read_nir(paths[0])
    x = torch.rand(4, 2, 4, generator=torch.Generator().manual_seed(12))
    for a, b in zip(model.simulate(x).counts, back.simulate(x).counts, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dialect", ["nir", "snntorch", "sinabs"])
def test_every_dialect_round_trips_through_a_file(dialect, tmp_path: Path):
    reset = "subtract" if dialect == "sinabs" else "zero"
    model = _model(_cnn(13), reset, theta=0.5)
    back = read_nir(write_nir(model, tmp_path / "m.nir", dialect=dialect))
    assert [type(layer) for layer in back.network.layers] == [
        type(layer) for layer in model.network.layers]
    assert back.recipe.reset.value == reset and back.recipe.threshold == 0.5
    x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(14))
    _same(model.simulate(x).counts, list(back.simulate(x).counts), 10)


def _quiet_export(export, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export(*args, **kwargs)


def test_graph_written_by_snntorch_reads_with_its_counts():
    """snnTorch's export needs per-neuron beta and threshold (scalars fail nir's type check)
    and ignore_dims=[0]; Leaky(beta=1) is written as LIF with tau = r = inf. Its AvgPool2d
    feeds the Linear without neurons: composed into one Linear."""
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(15)

    def leaky(*shape: int, output: bool = False):
        return snn.Leaky(beta=torch.ones(*shape), threshold=torch.ones(*shape) * 0.8,
                         init_hidden=True, reset_mechanism="zero", output=output)

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), leaky(2, 4, 4),
                              torch.nn.AvgPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(8, 3), leaky(3, output=True))
    with torch.no_grad():
        net[0].weight.mul_(2).abs_()
    x = torch.rand(4, 1, 4, 4)
    graph = _quiet_export(export_to_nir, net, x[:1], ignore_dims=[0])
    model = read_nir(graph, steps=25)
    theirs = snntorch_run(net, x, 25, ("1", "5"))
    _same(model.simulate(x).counts, theirs, 20)


def test_graph_written_by_norse_reads_with_its_counts():
    """norse writes the example input's batch dimension into the Input node and None for
    torch.nn.Flatten (read as a Flatten). A leading 1 is kept where the graph accepts it
    (a Flatten follows: (1, 2, 4) may be one channel) and dropped where it does not (a
    Conv2d or Linear follows)."""
    norse = pytest.importorskip("norse.torch")
    torch.manual_seed(16)
    net = norse.SequentialState(torch.nn.Flatten(), torch.nn.Linear(8, 6), norse.IAFCell(),
                                torch.nn.Linear(6, 3), norse.IAFCell())
    with torch.no_grad():
        net[1].weight.abs_()
    x = torch.rand(4, 2, 4)
    graph = _quiet_export(norse.to_nir, net, x[:1])
    assert graph.nodes["0"] is None and tuple(graph.nodes["input"].input_type["input"]) == (
        1, 2, 4)
    model = read_nir(graph, steps=25)
    assert model.network.input_shape == (1, 2, 4)
    _same(model.simulate(x[:, None]).counts, norse_run(net, x, 25, ("2", "4")), 10)
    conv = norse.SequentialState(torch.nn.Conv2d(1, 2, 3, padding=1), norse.IAFCell(),
                                 torch.nn.Flatten(), torch.nn.Linear(32, 3), norse.IAFCell())
    with torch.no_grad():
        conv[0].weight.abs_()
    x = torch.rand(4, 1, 4, 4)
    model = read_nir(_quiet_export(norse.to_nir, conv, x[:1]), steps=25)
    assert model.network.input_shape == (1, 4, 4)
    _same(model.simulate(x).counts, norse_run(conv, x, 25, ("1", "4")), 10)


def test_graph_written_by_sinabs_reads_with_its_counts(tmp_path: Path):
    """sinabs' IF nodes mean reset by subtraction and v >= v_thr (dialect 'sinabs'); its
    Flatten has no input type (nir.write fails; write_graph fills it in); its SumPool2d
    feeds the Linear without neurons (composed)."""
    sinabs = pytest.importorskip("sinabs")
    import sinabs.layers as sl

    torch.manual_seed(17)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), sl.IAFSqueeze(batch_size=4),
                              sl.SumPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8, 3),
                              sl.IAFSqueeze(batch_size=4))
    with torch.no_grad():
        net[0].weight.abs_().mul_(0.3)
        net[4].weight.abs_().mul_(0.2)
    x = torch.rand(4, 1, 4, 4)
    graph = _quiet_export(sinabs.to_nir, net, x)
    assert graph.nodes["3"].input_type["input"] is None
    with pytest.raises(TypeError):
        nir.write(tmp_path / "raw.nir", graph)
    theirs = sinabs_run(net, x, 25, ("1", "5"))
    assert max(float(t.max()) for t in theirs) <= 25  # one spike per step at most
    for source in (graph, write_graph(graph, tmp_path / "fixed.nir")):
        model = read_nir(source, steps=25, dialect="sinabs")
        assert model.recipe.reset.value == "subtract"
        _same(model.simulate(x).counts, theirs, 10)
    assert np.array_equal(nir.read(tmp_path / "fixed.nir").nodes["3"].input_type["input"],
                          [2, 2, 2])
