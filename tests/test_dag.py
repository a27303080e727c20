"""Graphs beyond a chain: residual Add and Concat through capture, normalization and the
rate simulator (hand-computed trains, rescaling invariant, convergence to the ANN)."""

import pytest
import torch
import torch.nn.functional as F
from dag_models import Inception, ResidualBlock, trained_like
from torch import nn

from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import (
    INPUT,
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
from spikecast.ir.normalize import data_based, model_based
from spikecast.schemes import convert, get_recipe
from spikecast.schemes.rate import RateRecipe


@pytest.mark.parametrize(("model", "shape"), [(ResidualBlock, (1, 6, 6)), (Inception, (1, 6, 6))])
def test_capture_equals_the_module(model: type[nn.Module], shape: tuple[int, ...]) -> None:
    torch.manual_seed(1)
    m = trained_like(model())
    net = capture(m, shape)
    x = torch.rand(5, *shape)
    with torch.no_grad():
        assert torch.allclose(net(x), m(x), atol=1e-5)
    assert not net.is_chain


def test_residual_block_stages() -> None:
    torch.manual_seed(1)
    net = capture(trained_like(ResidualBlock()), (1, 6, 6))
    stages = {s.name: s for s in net.stages()}
    add = next(s for s in stages.values() if isinstance(s.layer, Add))
    conv2 = stages["conv2+bn2"]
    # relu(conv2(.) + h): the Add is the population, the second convolution only a current
    assert add.relu and add.population and add.layer.weights == (1.0, 1.0)
    assert not conv2.relu and not conv2.population
    assert add.sources == (conv2.index, stages["stem"].index)
    assert stages["stem"].population and stages["conv1+bn1"].population
    assert stages["stem"].sources == (INPUT,)


def test_canonicalize_moves_relu_through_concat_and_pool() -> None:
    # relu(maxpool(cat(a, b))) -> cat(maxpool... ): ReLU lands right after each convolution
    class Late(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1)
            self.fc = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.relu(F.max_pool2d(torch.cat([self.a(x), self.b(x)], 1), 2))
            return self.fc(y.flatten(1))

    torch.manual_seed(2)
    m = Late().eval()
    net = capture(m, (1, 2, 2))
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == [
        "Conv2d", "Conv2d", "ReLU", "ReLU", "Concat", "MaxPool2d", "Flatten", "Linear"
    ]
    x = torch.rand(4, 1, 2, 2)
    with torch.no_grad():
        assert torch.allclose(net(x), m(x), atol=1e-6)


def test_pre_activation_read_twice_is_refused() -> None:
    net = Network(
        (Linear(torch.ones(1, 1)), ReLU(), Add((1.0, 1.0)), Linear(torch.ones(1, 1))),
        ("fc", "relu", "add", "out"), (1,), ((INPUT,), (0,), (1, 0), (2,)),
    )
    with pytest.raises(ValueError, match="pre-activation is read by"):
        net.stages()


def test_bad_sources_are_refused() -> None:
    with pytest.raises(ValueError, match="must be earlier layers"):
        Network((Linear(torch.ones(1, 1)),), ("fc",), (1,), ((0,),))
    with pytest.raises(ValueError, match="2 weights for 1 inputs"):
        Network((Add((1.0, 1.0)),), ("add",), (1,), ((INPUT,),))


@pytest.mark.parametrize("method", ["data", "model"])
def test_normalization_rescales_every_layer_exactly(method: str) -> None:
    # normalized activation of every layer x lambda of that layer == the ANN's
    torch.manual_seed(3)
    net = capture(trained_like(ResidualBlock()), (1, 6, 6))
    x = torch.rand(64, 1, 6, 6)
    norm = data_based(net, x, 99.0) if method == "data" else model_based(net)
    ann, snn = net.activations(x), norm.network.activations(x)
    for a, b, lam in zip(ann, snn, norm.scales, strict=True):
        assert torch.allclose(b * lam, a, atol=1e-5)
    add = next(i for i, layer in enumerate(norm.network.layers) if isinstance(layer, Add))
    w_conv, w_skip = norm.network.layers[add].weights
    src_conv, src_skip = net.sources[add]
    assert w_skip == pytest.approx(norm.scales[src_skip] / norm.scales[add])
    assert w_conv == pytest.approx(norm.scales[src_conv] / norm.scales[add])


def test_concat_takes_the_largest_input_scale() -> None:
    net = Network(
        (Linear(torch.tensor([[2.0]])), ReLU(), Linear(torch.tensor([[4.0]])), ReLU(),
         Concat((1.0, 1.0)), Linear(torch.ones(1, 2))),
        ("a", "ra", "b", "rb", "cat", "out"), (1,),
        ((INPUT,), (0,), (INPUT,), (2,), (1, 3), (4,)),
    )
    norm = model_based(net)
    # lambda_a = 2, lambda_b = 4 -> concat on scale 4 with weights (2/4, 4/4)
    assert norm.scales[4] == 4.0
    assert norm.network.layers[4].weights == (0.5, 1.0)


def _residual_scalar() -> Network:
    """h = relu(0.5 x); out = relu(1.0 h + 0.25 x) with the skip from the input."""
    return Network(
        (Linear(torch.tensor([[0.5]])), ReLU(), Linear(torch.tensor([[1.0]])),
         Add((1.0, 0.25))),
        ("h", "h.relu", "proj", "out"), (1,),
        ((INPUT,), (0,), (1,), (2, INPUT)),
    )


def test_residual_spike_train_golden() -> None:
    # x = 1 constant. h: v .5, 1.0->s2->0, .5, 1.0->s4, .5, 1.0->s6: spikes at 2, 4, 6.
    # out gets 1.0 * theta * s_h(t) + 0.25 every step (reset by subtraction):
    #   t1 .25; t2 1.5->s->.5; t3 .75; t4 2.0->s->1.0; t5 1.25->s->.25; t6 1.5->s->.5
    recipe = RateRecipe(normalization="none", steps=6, v_init=0.0)
    model = recipe.build(_residual_scalar(), recipe.calibrate(_residual_scalar(), None))
    out = model.simulate(torch.ones(1, 1))
    assert [c.item() for c in out.counts] == [3.0, 4.0]
    assert out.membranes[1].item() == 0.5
    assert out.arrivals[2].item() == 3.0  # h's spikes reach the projection
    assert 3 not in out.arrivals  # the skip carries the constant input, no spikes
    trains = [model.simulate(torch.ones(1, 1), t).counts[1].item() for t in range(1, 7)]
    assert trains == [0.0, 1.0, 1.0, 2.0, 3.0, 4.0]


def test_residual_poisson_skip_counts_direct_arrivals() -> None:
    recipe = RateRecipe(normalization="none", steps=50, input_coding="poisson", seed=3)
    net = _residual_scalar()
    model = recipe.build(net, recipe.calibrate(net, None))
    out = model.simulate(torch.full((2, 1), 0.5))
    # every input spike reaches the Add population directly (one connection each)
    assert torch.equal(out.arrivals[3].flatten(), out.input_spikes)
    result = model.evaluate(torch.full((2, 1), 0.5), torch.zeros(2, dtype=torch.long))
    by_name = {layer.name: layer for layer in result.layers}
    assert by_name["out"].synaptic_events == pytest.approx(float(out.input_spikes.mean()))
    assert by_name["proj"].neurons == 0 and by_name["proj"].spikes == 0


@pytest.mark.parametrize(("model", "tol"), [(ResidualBlock, 0.06), (Inception, 0.02)])
def test_rate_snn_converges_to_the_normalized_ann(model: type[nn.Module], tol: float) -> None:
    # reset by subtraction: |theta count / T - a| <= residual charge / T per population, a
    # few 1e-3 at T = 1000 plus what upstream errors add; behind the residual block's
    # max-pool the gate follows the leading count, which for near-equal rates is not always
    # the largest rate (the SNN Toolbox approximation), hence the looser bound there
    torch.manual_seed(4)
    m = trained_like(model())
    x = torch.rand(8, 1, 6, 6)
    snn = convert(m, get_recipe("rate", steps=1000, percentile=100.0), calib_x=x)
    rates = snn.rates(x)
    with torch.no_grad():
        acts = snn.network.activations(x)
    for stage, rate in zip(snn.simulate(x[:1], 1).populations, rates, strict=True):
        target = acts[stage.index].clamp(min=0)
        assert (rate - target).abs().max() < tol, stage.name


def test_rate_refuses_current_into_a_synaptic_layer() -> None:
    net = Network(
        (Linear(torch.ones(2, 1)), Linear(torch.ones(1, 2))), ("a", "b"), (1,),
    )
    # under Poisson input 'a' turns spikes into a current that 'b' cannot take (under
    # constant input a's output is constant and b receives it exactly)
    recipe = RateRecipe(normalization="none", steps=2, input_coding="poisson")
    with pytest.raises(ValueError, match=r"layer 'b' .*current of a layer without ReLU"):
        recipe.build(net, recipe.calibrate(net, None)).simulate(torch.ones(1, 1))


def test_maxpool_after_concat_gates_spikes() -> None:
    net = Network(
        (Conv2d(torch.ones(1, 1, 1, 1)), ReLU(), Conv2d(torch.full((1, 1, 1, 1), 0.5)), ReLU(),
         Concat((1.0, 1.0)), MaxPool2d((1, 2), (1, 2)), Conv2d(torch.ones(1, 2, 1, 1))),
        ("a", "ra", "b", "rb", "cat", "pool", "out"), (1, 1, 2),
        ((INPUT,), (0,), (INPUT,), (2,), (1, 3), (4,), (5,)),
    )
    recipe = RateRecipe(normalization="none", steps=4, v_init=0.0)
    out = recipe.build(net, recipe.calibrate(net, None)).simulate(
        torch.tensor([[[[0.5, 0.75]]]])
    )
    # a: (0.5, 0.75) -> 2 and 3 spikes in 4 steps; b: (0.25, 0.375) -> 1 and 1; the pool
    # forwards the leader of each channel: 3 (channel a) + 1 (channel b) = 4 arrivals
    assert out.counts[0].flatten().tolist() == [2.0, 3.0]
    assert out.counts[1].flatten().tolist() == [1.0, 1.0]
    assert out.arrivals[6].sum().item() == 4.0


def test_compare_reports_a_residual_network() -> None:
    from spikecast.datasets.loaders import Dataset
    from spikecast.measure.opcounts import ann_workload, layer_ops
    from spikecast.report.compare import CompareConfig, compare

    torch.manual_seed(5)
    net = capture(trained_like(ResidualBlock()), (1, 6, 6))
    x = torch.rand(24, 1, 6, 6)
    y = net(x).argmax(1)
    data = Dataset("toy", x[:16], y[:16], x[16:], y[16:], 3, "none")
    out = compare(net, data, CompareConfig(schemes=("rate", "ssnn"), params={
        "rate": {"steps": 40}}, calib_samples=16, fidelity_samples=4))
    assert "SSNN circuit is a chain" in out["skipped"]["ssnn"] and not out["failed"]
    from spikecast.report.html import render

    assert 'id="skipped"' in render(out) and 'id="failed"' not in render(out)
    rate = out["schemes"]["rate"]
    names = [layer["name"] for layer in rate["layers"]]
    assert names == ["stem", "conv1+bn1", "conv2+bn2", "add", "fc"]
    # conv2 only sends current into the Add population: no neurons, no spikes of its own
    conv2 = rate["layers"][2]
    assert conv2["neurons"] == 0 and conv2["spikes"] == 0 and conv2["synaptic_events"] > 0
    assert [f["name"] for f in rate["fidelity"]] == ["stem", "conv1+bn1", "add", "fc"]
    # the ANN's effective MACs: every synaptic layer's non-zero inputs x fan-out
    acts = net.activations(x[16:])
    expected = sum(
        float(layer_ops(layer, x[16:] if src[0] == INPUT else acts[src[0]]).sum())
        for layer, src in zip(net.layers, net.sources, strict=True)
        if isinstance(layer, (Linear, Conv2d))
    ) / 8
    assert ann_workload(net, x[16:]).effective_macs == pytest.approx(expected)


def test_canonicalize_keeps_a_negative_concat_exact() -> None:
    # relu(concat(x, -x)) = concat(relu(x), relu(-x)): each part gets its own Add + ReLU
    net = Network(
        (Linear(torch.tensor([[1.0], [-2.0]])), Linear(torch.tensor([[0.5], [1.0]])),
         Concat((1.0, -1.0)), ReLU(), Linear(torch.ones(1, 4))),
        ("a", "b", "cat", "relu", "out"), (1,),
        ((INPUT,), (INPUT,), (0, 1), (2,), (3,)),
    )
    canon = canonicalize(net)
    x = torch.tensor([[0.3], [0.9]])
    assert torch.allclose(canon(x), net(x))
    # x = .3: concat(1 * (.3, -.6), -1 * (.15, .3)) -> relu -> (.3, 0, 0, 0) -> sum .3
    # x = .9: concat((.9, -1.8), (-.45, -.9)) -> (.9, 0, 0, 0) -> .9
    assert canon(x).flatten().tolist() == pytest.approx([0.3, 0.9])
    canon.stages()  # every ReLU sits after an Add


def test_relu_after_a_non_negative_add_is_kept_as_a_population() -> None:
    # relu(x + relu(conv(x))): the ReLU is the identity but makes the Add a population, so
    # the readout layer receives spikes (under constant input the Add mixes analog and spikes)
    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 1, 1), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(F.relu(x + F.relu(self.conv(x))).flatten(1))

    torch.manual_seed(6)
    m = Skip().eval()
    net = capture(m, (1, 2, 2))
    add = next(s for s in net.stages() if isinstance(s.layer, Add))
    assert add.relu and add.population
    x = torch.rand(3, 1, 2, 2)
    snn = convert(m, get_recipe("rate", steps=300, percentile=100.0), calib_x=x)
    assert torch.equal(snn.simulate(x).predictions[-1], net(x).argmax(1))


def test_trailing_flatten_reads_out_the_last_population() -> None:
    net = Network(
        (Conv2d(torch.ones(2, 1, 1, 1) * torch.tensor([0.2, 0.6]).view(2, 1, 1, 1)), ReLU(),
         AvgPool2d((2, 2), (2, 2)), ReLU(), Flatten()),
        ("conv", "relu", "gap", "gap.relu", "flat"), (1, 2, 2),
    )
    stages = net.stages()
    assert [s.population for s in stages] == [True, True, False]
    recipe = RateRecipe(normalization="none", steps=10)
    out = recipe.build(net, recipe.calibrate(net, None)).simulate(torch.ones(1, 1, 2, 2))
    # channel 1 fires at rate 0.6 and wins; the pooled population spikes 6 times in 10 steps
    assert out.predictions[-1].item() == 1
    assert out.counts[1].flatten().tolist() == [2.0, 6.0]


def test_maxpool_after_a_weighted_add_of_spike_trains_is_refused() -> None:
    net = Network(
        (Conv2d(torch.ones(1, 1, 1, 1)), ReLU(), Conv2d(torch.ones(1, 1, 1, 1)), ReLU(),
         Add((0.1, 1.0)), MaxPool2d((1, 2), (1, 2)), Conv2d(torch.ones(1, 1, 1, 1))),
        ("a", "ra", "b", "rb", "add", "pool", "out"), (1, 1, 2),
        ((INPUT,), (0,), (INPUT,), (2,), (1, 3), (4,), (5,)),
    )
    recipe = RateRecipe(normalization="none", steps=4)
    with pytest.raises(ValueError, match=r"layer 'pool' .*put a ReLU after the Add"):
        recipe.build(net, recipe.calibrate(net, None)).simulate(torch.ones(1, 1, 1, 2))


def test_negative_inputs_are_refused() -> None:
    net = Network((Linear(torch.ones(1, 1)),), ("fc",), (1,))
    with pytest.raises(ValueError, match=r"calibration inputs range over \[-0\.5, 1\]"):
        convert(net, get_recipe("rate"), calib_x=torch.tensor([[-0.5], [1.0]]))
    recipe = RateRecipe(normalization="none", steps=2)
    with pytest.raises(ValueError, match=r"inputs range over \[-1, -1\]"):
        recipe.build(net, recipe.calibrate(net, None)).simulate(torch.tensor([[-1.0]]))


@pytest.mark.parametrize("scheme", ["rate", "ssnn", "sigma-delta"])
def test_nan_inputs_are_refused_by_every_scheme(scheme: str) -> None:
    net = Network((Linear(torch.ones(2, 3) * 0.3), ReLU(), Linear(torch.ones(2, 2))),
                  ("h", "h.relu", "out"), (3,))
    x = torch.rand(4, 3)
    snn = convert(net, get_recipe(scheme), calib_x=x)
    x[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite values \(first at sample 2\)"):
        snn.evaluate(x, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="calibration inputs contain NaN"):
        convert(net, get_recipe(scheme), calib_x=x)
