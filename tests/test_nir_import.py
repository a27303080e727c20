"""NIR import: round trips through nir.write/nir.read (identical spike counts), hand-built
graphs with hand-computed counts, a NIR-semantics oracle, and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mnist_data import load_mnist

nir = pytest.importorskip("nir")

from spikecast.io.nir import export_nir, read_nir, write_nir  # noqa: E402
from spikecast.ir.graph import (  # noqa: E402
    AvgPool2d,
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
from spikecast.zoo.pretrained import load_pretrained  # noqa: E402

F32 = np.float32


def _a(*v) -> np.ndarray:
    return np.array(v, dtype=F32)


def _if(*thr: float) -> nir.IF:
    n = len(thr)
    return nir.IF(r=np.ones(n, F32), v_threshold=_a(*thr), v_reset=np.zeros(n, F32))


def _graph(input_shape, *named) -> nir.NIRGraph:
    nodes = {"in": nir.Input(np.array(input_shape))} | dict(named)
    names = list(nodes)
    last = nodes[names[-1]]
    nodes["out"] = nir.Output(np.array(last.output_type["output"]))
    return nir.NIRGraph(nodes, list(zip([*names], [*names[1:], "out"], strict=True)))


def _nir_oracle(chain: list[nir.NIRNode], x: np.ndarray, steps: int) -> list[np.ndarray]:
    """NIR semantics on the dt = 1 grid in float64: Affine/Linear/Scale are maps, IF does
    v <- v + r I; z = v > v_thr; v <- v_reset where z. Returns each IF's spike counts."""
    states = [np.zeros_like(n.v_threshold, dtype=np.float64) if isinstance(n, nir.IF) else None
              for n in chain]
    counts = [np.zeros_like(s) for s in states if s is not None]
    for _ in range(steps):
        sig, k = x.astype(np.float64), 0
        for node, v in zip(chain, states, strict=True):
            if isinstance(node, nir.Affine):
                sig = node.weight @ sig + node.bias
            elif isinstance(node, nir.Linear):
                sig = node.weight @ sig
            elif isinstance(node, nir.Scale):
                sig = sig * node.scale
            else:
                v += node.r * sig
                sig = (v > node.v_threshold).astype(np.float64)
                v[sig > 0] = node.v_reset[sig > 0]
                counts[k] += sig
                k += 1
    return counts


def _counts(model: RateModel, x: np.ndarray, steps: int) -> list[np.ndarray]:
    out = model.simulate(torch.from_numpy(x[None].astype(F32)), steps)
    return [c[0].numpy() for c in out.counts]


def _same_counts(a: RateModel, b: RateModel, x: torch.Tensor) -> None:
    ra, rb = a.simulate(x), b.simulate(x)
    assert ra.names == rb.names
    for name, ca, cb in zip(ra.names, ra.counts, rb.counts, strict=True):
        assert torch.equal(ca, cb), name
    assert torch.equal(ra.predictions, rb.predictions)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist("mini")


def _pretrained(name: str, mnist, **params) -> RateModel:
    module, _ = load_pretrained(name)
    return convert(module, get_recipe("rate", **params), mnist.x_train[:500])


def test_mnist_cnn_round_trip_identical_counts(mnist, tmp_path: Path):
    model = _pretrained("mnist-cnn", mnist, steps=20, reset="zero")
    assert any(isinstance(layer, MaxPool2d) for layer in model.network.layers)
    back = read_nir(write_nir(model, tmp_path / "cnn.nir", approximate=True))
    assert [type(layer) for layer in back.network.layers] == [
        type(layer) for layer in model.network.layers]  # max-pools restored from metadata
    # the graph holds the normalized weights, so the imported model normalizes no further
    assert back.recipe.params() == model.recipe.params() | {"normalization": "none"}
    x = mnist.x_test[:100]
    _same_counts(model, back, x)
    assert back.simulate(x).counts[0].sum() > 0


def test_mnist_fc_round_trip_exact_without_approximation(mnist, tmp_path: Path):
    model = _pretrained("mnist-fc", mnist, steps=20, reset="zero", v_init=0.0)
    back = read_nir(write_nir(model, tmp_path / "fc.nir"))
    assert back.network.names == model.network.names
    for ours, theirs in zip(model.network.layers, back.network.layers, strict=True):
        if isinstance(ours, Linear):
            assert torch.equal(ours.weight, theirs.weight)
    _same_counts(model, back, mnist.x_test[:100])


def test_power_of_two_theta_avgpool_and_subtract_round_trip(tmp_path: Path):
    """theta = 0.5: weights x theta and / theta are exact, the pool gets a Scale(theta);
    reset by subtraction is approximated in NIR and restored by spikecast."""
    g = torch.Generator().manual_seed(3)
    net = canonicalize(Network(
        (Conv2d(torch.rand(3, 1, 3, 3, generator=g) * 0.3, torch.rand(3, generator=g) * 0.05,
                (1, 1), (1, 1)), ReLU(), AvgPool2d((2, 2), (2, 2)), Flatten(),
         Linear(torch.randn(4, 27, generator=g) * 0.3, torch.rand(4, generator=g) * 0.05)),
        ("conv", "act", "pool", "flat", "fc"), (1, 6, 6),
    ))
    model = convert(net, RateRecipe(steps=40, normalization="none", threshold=0.5))
    with pytest.raises(ValueError, match=r"subtraction"):
        export_nir(model)
    back = read_nir(write_nir(model, tmp_path / "m.nir", approximate=True), steps=40)
    assert back.recipe.reset.value == "subtract" and back.recipe.threshold == 0.5
    assert isinstance(back.network.layers[2], AvgPool2d)
    _same_counts(model, back, torch.rand(16, 1, 6, 6, generator=g))


def test_hand_built_affine_if_graph_three_steps():
    """x = (1, 0.5); layer 1: I = (0.5, 0.75), v_thr = 1 (strict): neuron a reaches v = 1.0
    at step 2 without firing and fires at step 3; b fires at step 2 (1.5). Spikes
    (0,0), (0,1), (1,0). Layer 2: I = 0.5 + (1, 2).s, v_thr = 1: v = 0.5; 0.5 + 2.5 = 3.0
    fires; 0.5 + 1 = 1.5 fires -> 2 spikes."""
    graph = _graph(
        (2,),
        ("fc1", nir.Affine(weight=_a([0.5, 0.0], [0.25, 0.5]), bias=_a(0.0, 0.25))),
        ("lif1", _if(1.0, 1.0)),
        ("fc2", nir.Affine(weight=_a([1.0, 2.0]), bias=_a(0.5))),
        ("lif2", _if(1.0)),
    )
    model = read_nir(graph, steps=3)
    assert model.recipe.threshold == float(np.nextafter(F32(1), F32(2)))
    assert model.recipe.reset.value == "zero" and model.recipe.input_coding.value == "constant"
    assert model.network.names == ("fc1", "lif1", "fc2")
    counts = _counts(model, _a(1.0, 0.5), 3)
    assert np.array_equal(counts[0], [1, 1]) and np.array_equal(counts[1], [2])
    assert all(np.array_equal(a, b) for a, b in zip(
        counts, _nir_oracle(list(graph.nodes.values())[1:-1], _a(1.0, 0.5), 3), strict=True))


def test_per_neuron_thresholds_are_folded_into_weights():
    """Thresholds (1, 2) and 0.5 differ: theta = 1 and rows are divided by theta_i.
    Layer 1 (x = (1, 1)): a = 0.4 t fires at step 3; b = 1.1 t fires at step 2.
    Layer 2: I = 0.1 + (0.3, 0.6).s: v = 0.1, 0.8 (fires), 0.4 -> 1 spike."""
    graph = _graph(
        (2,),
        ("fc1", nir.Linear(weight=_a([0.4, 0.0], [0.0, 1.1]))),
        ("if1", _if(1.0, 2.0)),
        ("fc2", nir.Affine(weight=_a([0.3, 0.6]), bias=_a(0.1))),
        ("if2", _if(0.5)),
    )
    model = read_nir(graph, steps=3)
    assert model.recipe.threshold == 1.0
    w1 = model.network.layers[0].weight
    assert torch.allclose(w1, torch.tensor([[0.4, 0.0], [0.0, 0.55]]))
    counts = _counts(model, _a(1.0, 1.0), 3)
    assert np.array_equal(counts[0], [1, 1]) and np.array_equal(counts[1], [1])


def test_scale_nodes_and_gains_match_nir_oracle():
    g = np.random.default_rng(0)
    chain = [
        nir.Scale(scale=_a(1.5, 0.5, 2.0)),
        nir.Affine(weight=g.uniform(-0.2, 0.6, (4, 3)).astype(F32), bias=_a(0.1, 0, 0.05, 0)),
        nir.Scale(scale=_a(1.0, 2.0, 0.5, 1.0)),
        nir.IF(r=_a(1.0, 0.5, 2.0, 1.0), v_threshold=_a(0.7, 1.0, 1.3, 0.9),
               v_reset=np.zeros(4, F32)),
        nir.Scale(scale=_a(1.0, -0.5, 2.0, 1.0)),
        nir.Linear(weight=g.uniform(-0.3, 0.8, (2, 4)).astype(F32)),
        _if(1.0, 1.0),
    ]
    graph = _graph((3,), *((f"n{i}", n) for i, n in enumerate(chain)))
    x = _a(0.9, 0.3, 0.6)
    model = read_nir(graph, steps=50)
    ours = _counts(model, x, 50)
    oracle = _nir_oracle(chain, x, 50)
    assert sum(c.sum() for c in oracle) > 20
    assert all(np.array_equal(a, b) for a, b in zip(ours, oracle, strict=True))


def test_foreign_sumpool_is_a_ones_convolution():
    """A 2x2 sum of (0.125, 0.25, 0.5, 0.125) = 1 per step into v_thr = 1.5: v = 1, 2
    (fires), 1, 2 (fires) -> 2 spikes in 4 steps."""
    pool = nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0]))
    graph = _graph((1, 2, 2), ("sum", pool), ("if", nir.IF(
        r=np.ones((1, 1, 1), F32), v_threshold=np.full((1, 1, 1), 1.5, F32),
        v_reset=np.zeros((1, 1, 1), F32))))
    model = read_nir(graph, steps=4)
    conv = model.network.layers[0]
    assert isinstance(conv, Conv2d) and torch.equal(conv.weight, torch.ones(1, 1, 2, 2))
    x = torch.tensor([[[[0.125, 0.25], [0.5, 0.125]]]])
    assert model.simulate(x).counts[0].item() == 2


def test_leak_free_lif_and_cuba_lif_equal_if():
    inf = np.full(2, np.inf, F32)
    lif = nir.LIF(tau=inf, r=inf, v_leak=np.zeros(2, F32), v_threshold=_a(1, 1))
    cuba = nir.CubaLIF(tau_syn=_a(1, 1), tau_mem=inf, r=inf, v_leak=np.zeros(2, F32),
                       v_threshold=_a(1, 1), w_in=1.0)
    fc = nir.Affine(weight=_a([0.3, 0.2], [0.1, 0.6]), bias=_a(0.05, 0.0))
    x = _a(1.0, 0.8)
    ref = _counts(read_nir(_graph((2,), ("fc", fc), ("n", _if(1, 1))), steps=20), x, 20)
    assert ref[0].sum() > 0
    for neuron in (lif, cuba):
        got = _counts(read_nir(_graph((2,), ("fc", fc), ("n", neuron)), steps=20), x, 20)
        assert np.array_equal(got[0], ref[0])


def test_leaky_or_filtered_neurons_refused():
    fc = nir.Linear(weight=_a([1.0, 0.0], [0.0, 1.0]))
    leaky = nir.LIF(tau=_a(10, 20), r=_a(10, 20), v_leak=np.zeros(2, F32), v_threshold=_a(1, 1))
    with pytest.raises(ValueError, match=r"node 'lif1': LIF leaks \(dt / tau up to 0.1 "):
        read_nir(_graph((2,), ("fc", fc), ("lif1", leaky)))
    inf = np.full(2, np.inf, F32)
    dead = nir.LIF(tau=inf, r=_a(1, 1), v_leak=np.zeros(2, F32), v_threshold=_a(1, 1))
    with pytest.raises(ValueError, match=r"'lif2'.*never integrates"):
        read_nir(_graph((2,), ("fc", fc), ("lif2", dead)))
    filtered = nir.CubaLIF(tau_syn=_a(3, 3), tau_mem=inf, r=inf, v_leak=np.zeros(2, F32),
                           v_threshold=_a(1, 1), w_in=3.0)
    with pytest.raises(ValueError, match=r"'cuba'.*tau_syn up to 3"):
        read_nir(_graph((2,), ("fc", fc), ("cuba", filtered)))
    slow = nir.CubaLIF(tau_syn=_a(10, 10), tau_mem=inf, r=inf, v_leak=np.zeros(2, F32),
                       v_threshold=_a(1, 1), w_in=1.0)  # w_in 1 but a 10-step filter
    with pytest.raises(ValueError, match=r"'cuba'.*tau_syn up to 10"):
        read_nir(_graph((2,), ("fc", fc), ("cuba", slow)))
    gained = nir.CubaLIF(tau_syn=_a(1, 1), tau_mem=inf, r=inf, v_leak=np.zeros(2, F32),
                         v_threshold=_a(1, 1), w_in=3.0)
    with pytest.raises(ValueError, match=r"'cuba'.*w_in up to 3"):
        read_nir(_graph((2,), ("fc", fc), ("cuba", gained)))
    reset = nir.IF(r=_a(1, 1), v_threshold=_a(1, 1), v_reset=_a(0, -0.5))
    with pytest.raises(ValueError, match=r"'if': v_reset 0.5 != 0"):
        read_nir(_graph((2,), ("fc", fc), ("if", reset)))


def test_unknown_nodes_and_shapes_refused(tmp_path: Path):
    fc = nir.Linear(weight=_a([1.0, 0.0], [0.0, 1.0]))
    li = nir.LI(tau=_a(1, 1), r=_a(1, 1), v_leak=_a(0, 0))
    with pytest.raises(ValueError, match=r"node 'li' has NIR type LI"):
        read_nir(_graph((2,), ("fc", fc), ("li", li)))
    def conv() -> nir.Conv2d:
        return nir.Conv2d(input_shape=(2, 2), weight=np.ones((1, 1, 1, 1), F32), stride=1,
                          padding=0, dilation=1, groups=1, bias=np.zeros(1, F32))

    with pytest.raises(ValueError, match=r"'c2' follows synaptic node 'c1'"):
        read_nir(_graph((1, 2, 2), ("c1", conv()), ("c2", conv())))
    with pytest.raises(ValueError, match=r"synaptic node 'fc' has no neuron population"):
        read_nir(_graph((2,), ("fc", fc)))
    with pytest.raises(ValueError, match=r"no such NIR file"):
        read_nir(tmp_path / "absent.nir")


def test_linear_after_pool_is_composed_into_one_linear():
    """sinabs writes SumPool2d -> Flatten -> Affine without neurons between: one Linear
    W' = W J_pool, b' = b. x = 0.1 everywhere: the 2 x 2 sum is 0.4, W = 0.5, b = 0.1, so
    I = 0.3 per step; v = .3, .6, .9, 1.2 -> spike (reset to 0): 2 spikes in 8 steps."""
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                         padding=np.array([0, 0]))
    flat = nir.Flatten(input_type={"input": np.array([1, 1, 1])}, start_dim=0, end_dim=-1)
    fc = nir.Affine(weight=_a([0.5]), bias=_a(0.1))
    model = read_nir(_graph((1, 2, 2), ("pool", pool), ("flat", flat), ("fc", fc),
                            ("n", _if(1.0))), steps=8)
    flatten, linear = model.network.layers
    assert isinstance(flatten, Flatten) and isinstance(linear, Linear)
    assert model.network.names == ("flat", "pool+fc")
    assert torch.equal(linear.weight, torch.full((1, 4), 0.5))
    assert torch.equal(linear.bias, torch.tensor([0.1]))
    counts = model.simulate(torch.full((1, 1, 2, 2), 0.1)).counts[0]
    assert counts.tolist() == [[2.0]]


def test_branched_graph_sums_the_edges_into_a_node():
    # n receives a(x) + b(x) = 2 x = (0.5, 1.0) per step; NIR fires when v > 1:
    #   n0: .5, 1.0, 1.5 -> spike -> 0, .5  -> 1 spike;  n1: 1.0, 2.0 -> s, 1.0, 2.0 -> s -> 2
    eye = _a([1.0, 0.0], [0.0, 1.0])
    nodes = {"in": nir.Input(np.array([2])), "a": nir.Linear(weight=eye),
             "b": nir.Linear(weight=eye.copy()), "n": _if(1, 1), "out": nir.Output(np.array([2]))}
    edges = [("in", "a"), ("in", "b"), ("a", "n"), ("b", "n"), ("n", "out")]
    model = read_nir(nir.NIRGraph(nodes, edges), steps=4)
    kinds = [type(layer).__name__ for layer in model.network.layers]
    assert kinds == ["Linear", "Linear", "Add", "ReLU"]
    assert model.network.sources == ((-1,), (-1,), (0, 1), (2,))
    assert _counts(model, _a(0.25, 0.5), 4)[0].tolist() == [1.0, 2.0]


def test_branched_graph_with_per_neuron_thresholds_refused():
    eye = _a([1.0, 0.0], [0.0, 1.0])
    nodes = {"in": nir.Input(np.array([2])), "a": nir.Linear(weight=eye),
             "b": nir.Linear(weight=eye.copy()), "n": _if(1, 2), "out": nir.Output(np.array([2]))}
    edges = [("in", "a"), ("in", "b"), ("a", "n"), ("b", "n"), ("n", "out")]
    with pytest.raises(ValueError, match=r"'n': thresholds .* differ"):
        read_nir(nir.NIRGraph(nodes, edges))


def test_branched_graph_must_end_in_neurons():
    eye = _a([1.0, 0.0], [0.0, 1.0])
    nodes = {"in": nir.Input(np.array([2])), "a": nir.Linear(weight=eye),
             "b": nir.Linear(weight=eye.copy()), "n": _if(1, 1),
             "head": nir.Linear(weight=eye.copy()), "out": nir.Output(np.array([2]))}
    edges = [("in", "a"), ("in", "b"), ("a", "n"), ("b", "n"), ("n", "head"), ("head", "out")]
    with pytest.raises(ValueError, match="reads 'head', not a neuron population"):
        read_nir(nir.NIRGraph(nodes, edges))


def test_residual_block_round_trip_identical_counts(tmp_path: Path):
    from dag_models import ResidualBlock, trained_like

    torch.manual_seed(0)
    x = torch.rand(20, 1, 6, 6)
    model = convert(trained_like(ResidualBlock()), get_recipe("rate", steps=30, reset="zero"), x)
    path = write_nir(model, tmp_path / "res.nir", approximate=True)  # the block has a max-pool
    back = read_nir(path)
    assert any(type(layer).__name__ == "Add" for layer in back.network.layers)
    assert not back.network.is_chain
    # NIR sums the Add's edges inside its IF node: the population keeps that node's name
    ra, rb = model.simulate(x), back.simulate(x)
    assert len(ra.counts) == len(rb.counts) == 4
    for ca, cb in zip(ra.counts, rb.counts, strict=True):
        assert torch.equal(ca, cb) and ca.sum() > 0
    assert torch.equal(ra.predictions, rb.predictions)


def test_recipe_restored_from_metadata_and_overridden(tmp_path: Path):
    """Poisson input, seed and steps travel in the graph metadata; arguments override them.
    Same seed -> same Poisson draws -> identical counts."""
    g = torch.Generator().manual_seed(6)
    net = Network((Linear(torch.rand(5, 4, generator=g) * 0.8), ReLU(),
                   Linear(torch.rand(3, 5, generator=g))), ("fc1", "act", "fc2"), (4,))
    model = convert(net, RateRecipe(steps=25, normalization="none", reset="zero",
                                      input_coding="poisson", seed=7, v_init=0.0))
    path = write_nir(model, tmp_path / "p.nir")
    back = read_nir(path)
    assert back.recipe.params() == model.recipe.params()
    x = torch.rand(8, 4, generator=g)
    _same_counts(model, back, x)
    other = read_nir(path, steps=5, input_coding="constant", seed=1)
    assert (other.recipe.steps, other.recipe.input_coding.value, other.recipe.seed) == (
        5, "constant", 1)
