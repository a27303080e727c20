"""The layer-wise rate simulator against the step-by-step reference: identical spikes,
counts, membranes, arrivals and predictions (bit for bit) on chains and DAGs, with gated
max-pools (fused and not), Poisson input, both resets, any block length, both backends."""

import numpy as np
import pytest
import torch
from dag_models import Inception, ResidualBlock, trained_like

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
)
from spikecast.ir.normalize import data_based
from spikecast.schemes.rate import kernels
from spikecast.schemes.rate.layerwise import LayerwiseRun
from spikecast.schemes.rate.neuron import IFParams
from spikecast.schemes.rate.sim import (
    InputCoding,
    RateOutput,
    lex_argmax,
    maxpool_pick,
    signal_kinds,
    simulate,
)


def assert_identical(a: RateOutput, b: RateOutput) -> None:
    assert a.names == b.names
    for name, ca, cb, va, vb in zip(a.names, a.counts, b.counts, a.membranes, b.membranes,
                                    strict=True):
        assert torch.equal(ca, cb), f"counts of {name}"
        assert torch.equal(va, vb), f"membranes of {name}"
    assert a.arrivals.keys() == b.arrivals.keys()
    for k in a.arrivals:
        assert torch.equal(a.arrivals[k], b.arrivals[k]), f"arrivals at stage {k}"
    assert torch.equal(a.input_spikes, b.input_spikes)
    assert torch.equal(a.predictions, b.predictions)


def both(net: Network, x: torch.Tensor, steps: int, neuron: IFParams, coding: InputCoding,
         block_steps: int | None = None) -> tuple[RateOutput, RateOutput]:
    seeded = [torch.Generator().manual_seed(5) for _ in range(2)]
    ref = simulate(net, x, steps, neuron, coding, seeded[0], schedule="step")
    fast = simulate(net, x, steps, neuron, coding, seeded[1], schedule="layer",
                    block_steps=block_steps)
    return ref, fast


def conv(g: torch.Generator, c_in: int, c_out: int, k: int, pad: int, scale: float,
         stride: int = 1) -> Conv2d:
    w = torch.randn(c_out, c_in, k, k, generator=g) * scale
    return Conv2d(w, torch.randn(c_out, generator=g) * 0.05, (stride, stride), (pad, pad))


def cnn_chain(g: torch.Generator) -> Network:
    """conv-relu-gate(2, s2)-conv-relu-gate(3, s2, p1)-avgpool-relu-flatten-linear-relu-out."""
    layers = (
        conv(g, 1, 4, 3, 1, 0.6), ReLU(), MaxPool2d((2, 2), (2, 2)),
        conv(g, 4, 5, 3, 1, 0.4), ReLU(), MaxPool2d((3, 3), (2, 2), (1, 1)),
        AvgPool2d((2, 2), (1, 1)), ReLU(), Flatten(),
        Linear(torch.randn(9, 20, generator=g) * 0.5), ReLU(),
        Linear(torch.randn(3, 9, generator=g) * 0.5, torch.randn(3, generator=g) * 0.1),
    )
    names = tuple(f"l{i}" for i in range(len(layers)))
    return Network(layers, names, (1, 12, 12))


def mlp(g: torch.Generator) -> Network:
    layers = (
        Linear(torch.randn(24, 10, generator=g) * 0.5, torch.randn(24, generator=g) * 0.1),
        ReLU(),
        Linear(torch.randn(16, 24, generator=g) * 0.35),
        ReLU(),
        Linear(torch.randn(5, 16, generator=g) * 0.4),
    )
    return Network(layers, ("a", "a.relu", "b", "b.relu", "out"), (10,))


def gate_dag(g: torch.Generator) -> Network:
    """Gates of every kind: of the input, of a Concat of populations (routed membranes), of
    a gate (membranes of a fused gate), of an Add of equally weighted spike trains."""
    layers = (
        MaxPool2d((2, 2), (1, 1)),                   # 0: of the input (exact max or gate)
        conv(g, 1, 3, 3, 1, 0.7), ReLU(),            # 1, 2
        conv(g, 1, 2, 1, 0, 0.9), ReLU(),            # 3, 4 (from the first max-pool)
        Concat((1.0, 1.0)),                          # 5: (pop 1, pop 3) -> 5 channels
        MaxPool2d((2, 2), (1, 1)),                   # 6: gate of a Concat -> 5 x 6 x 6
        conv(g, 5, 4, 3, 1, 0.4), ReLU(),            # 7, 8
        MaxPool2d((2, 2), (2, 2)),                   # 9: fused into population 7
        MaxPool2d((2, 2), (1, 1)),                   # 10: gate of a gate -> 4 x 2 x 2
        conv(g, 4, 4, 1, 0, 0.6), ReLU(),            # 11, 12
        conv(g, 4, 4, 1, 0, 0.6), ReLU(),            # 13, 14
        Add((0.5, 0.5)),                             # 15: routing Add of spikes (no ReLU)
        MaxPool2d((2, 2), (1, 1)),                   # 16: gate of the Add -> 4 x 1 x 1
        Flatten(),                                   # 17
        Linear(torch.randn(3, 4, generator=g)),      # 18: output
    )
    sources = ((INPUT,), (0,), (1,), (0,), (3,), (2, 4), (5,), (6,), (7,), (8,), (9,),
               (10,), (11,), (10,), (13,), (12, 14), (15,), (16,), (17,))
    return Network(layers, tuple(f"n{i}" for i in range(len(layers))), (1, 8, 8), sources)


def residual_dag(g: torch.Generator) -> Network:
    """relu(conv(h) + h) fused with its gate; an Add population fed by a current and the
    constant input; a Concat population as the output."""
    layers = (
        conv(g, 1, 3, 3, 1, 0.6), ReLU(),            # 0, 1: h
        conv(g, 3, 3, 3, 1, 0.3),                    # 2: current only
        Add((1.0, 0.8)), ReLU(),                     # 3, 4: relu(conv(h) + 0.8 h)
        MaxPool2d((2, 2), (2, 2)),                   # 5: fused into the Add population
        conv(g, 3, 1, 3, 1, 0.5),                    # 6: current (1 x 4 x 4)
        MaxPool2d((2, 2), (2, 2)),                   # 7: of the input: exact max, 1 x 4 x 4
        Add((1.0, 0.5)), ReLU(),                     # 8, 9: current + constant input
        Flatten(),                                   # 10
        Linear(torch.randn(4, 16, generator=g) * 0.5),  # 11
        Linear(torch.randn(3, 16, generator=g) * 0.5),  # 12
        Concat((1.0, 1.0)),                          # 13: output population
    )
    sources = ((INPUT,), (0,), (1,), (2, 1), (3,), (4,), (5,), (INPUT,), (6, 7), (8,),
               (9,), (10,), (10,), (11, 12))
    return Network(layers, tuple(f"r{i}" for i in range(len(layers))), (1, 8, 8), sources)


def split_dag(g: torch.Generator) -> Network:
    """A population read by a gated max-pool and by an average pool (not fused: two
    consumers), merged again by an Add population."""
    layers = (
        conv(g, 1, 3, 3, 1, 0.7), ReLU(),            # 0, 1: p (3 x 8 x 8)
        MaxPool2d((2, 2), (2, 2)),                   # 2: gate of p
        AvgPool2d((2, 2), (2, 2)),                   # 3: current of p
        Add((0.6, 0.9)), ReLU(),                     # 4, 5
        Flatten(),                                   # 6
        Linear(torch.randn(3, 48, generator=g) * 0.3),  # 7
    )
    sources = ((INPUT,), (0,), (1,), (1,), (2, 3), (4,), (5,), (6,))
    return Network(layers, tuple(f"s{i}" for i in range(len(layers))), (1, 8, 8), sources)


NETS = {"mlp": (mlp, (10,)), "cnn": (cnn_chain, (1, 12, 12)), "gates": (gate_dag, (1, 8, 8)),
        "residual": (residual_dag, (1, 8, 8)), "split": (split_dag, (1, 8, 8))}


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("coding", ["constant", "poisson"])
@pytest.mark.parametrize(("threshold", "reset"), [(1.0, "subtract"), (0.7, "zero"),
                                                  (0.3, "subtract")])
def test_layerwise_equals_stepwise(name: str, coding: str, threshold: float, reset: str) -> None:
    # theta = 0.7 and 0.3 are not float32 numbers: both schedules must round them alike
    build, shape = NETS[name]
    g = torch.Generator().manual_seed(hash((name, coding, threshold)) % 2**31)
    net = build(g)
    x = torch.rand(7, *shape, generator=g)
    x[0] = 0.0  # a silent sample: ties everywhere (counts and membranes equal)
    neuron = IFParams(threshold, reset)
    for block in (None, 1, 4):
        ref, fast = both(net, x, 23, neuron, InputCoding(coding), block)
        assert_identical(ref, fast)
    assert sum(float(c.sum()) for c in ref.counts) > 0


@pytest.mark.parametrize("model", [ResidualBlock, Inception])
def test_layerwise_equals_stepwise_on_captured_dags(model: type) -> None:
    torch.manual_seed(2)
    m = trained_like(model())
    x = torch.rand(16, 1, 6, 6)
    net = data_based(capture(m, (1, 6, 6)), x, 99.0).network
    for coding in InputCoding:
        assert_identical(*both(net, x, 40, IFParams(), coding, block_steps=16))


def test_torch_backend_equals_stepwise() -> None:
    # the backend every non-CPU device runs, checked here on the CPU
    g = torch.Generator().manual_seed(3)
    for build, shape in NETS.values():
        net = build(g)
        x = torch.rand(5, *shape, generator=g)
        for coding in InputCoding:
            ref = simulate(net, x, 17, IFParams(0.7), coding, torch.Generator().manual_seed(1),
                           schedule="step")
            stages = net.stages()
            run = LayerwiseRun(stages, signal_kinds(stages, coding), x, IFParams(0.7), coding,
                               torch.Generator().manual_seed(1), backend="torch")
            assert_identical(ref, run.run(17, block_steps=5))


def test_gate_follows_the_lead_as_it_changes_within_a_block() -> None:
    # A Poisson input pair (p = .5, .5) in one 1 x 2 pooling window: the gate forwards the
    # spike of the pixel with more spikes so far (ties: equal zero membranes -> the first).
    # The oracle replays the same draws; the output neuron (weight 1, theta 1) fires exactly
    # when a pooled spike arrives, so the arrivals after T steps are the pooled train's sum.
    net = Network((MaxPool2d((1, 2), (1, 2)), Flatten(), Linear(torch.ones(1, 1))),
                  ("pool", "flat", "out"), (1, 1, 2))
    x = torch.tensor([[[[0.5, 0.5]]]])
    steps = 40
    draws = torch.rand((steps, 1, 1, 1, 2), generator=torch.Generator().manual_seed(9))
    spikes = (draws < x).float().reshape(steps, 2).numpy()
    counts = np.cumsum(spikes, axis=0)
    lead = np.where(counts[:, 0] >= counts[:, 1], 0, 1)
    train = spikes[np.arange(steps), lead]
    assert np.count_nonzero(np.diff(lead)) >= 2  # the lead does change, several times
    for t in (1, 13, 27, steps):
        for block in (1, 7, t):
            out = simulate(net, x, t, IFParams(), InputCoding.POISSON,
                           torch.Generator().manual_seed(9), block_steps=block)
            assert out.counts[0].item() == train[:t].sum()


@pytest.mark.parametrize("pool", [MaxPool2d((2, 2), (2, 2)), MaxPool2d((3, 3), (2, 2), (1, 1)),
                                  MaxPool2d((3, 2), (1, 2), (1, 0))])
def test_gate_kernel_matches_maxpool_pick(pool: MaxPool2d) -> None:
    # the numba gate against the reference's float64-key max-pool, with many ties
    g = torch.Generator().manual_seed(4)
    events = (torch.rand(6, 3, 2, 7, 6, generator=g) < 0.4).float()
    membranes = torch.randint(-2, 3, (6, 3, 2, 7, 6), generator=g).float() / 4
    membranes[0, 0, 0, 0, 0] = -0.0
    counts = torch.zeros(3 * 2, 42)
    table = kernels.window_table(pool, 7, 6)
    ho = (7 + 2 * pool.padding[0] - pool.kernel_size[0]) // pool.stride[0] + 1
    wo = (6 + 2 * pool.padding[1] - pool.kernel_size[1]) // pool.stride[1] + 1
    picks = np.empty((6, 6, ho * wo), dtype=np.int64)
    kernels.gate_scan(events.reshape(6, 6, 42).numpy(), membranes.reshape(6, 6, 42).numpy(),
                      counts.numpy(), table, picks)
    running = torch.zeros(3, 2, 7, 6)
    for t in range(6):
        running += events[t]
        ref = maxpool_pick(pool, running, membranes[t])
        assert np.array_equal(picks[t].reshape(3, 2, ho, wo), ref.numpy())
    assert torch.equal(counts.reshape(3, 2, 7, 6), running)


def test_readout_kernel_matches_lex_argmax() -> None:
    # many ties in counts and in membranes (quarter steps, -0 beside +0)
    g = torch.Generator().manual_seed(6)
    events = (torch.rand(9, 40, 5, generator=g) < 0.3).float()
    membranes = torch.randint(-2, 3, (9, 40, 5), generator=g).float() / 4
    membranes[3, 0] = torch.tensor([-0.0, 0.0, -0.0, 0.0, -0.0])
    before = torch.randint(0, 3, (40, 5), generator=g).float()
    after = before + events.sum(0)
    predictions = np.empty((9, 40), dtype=np.int64)
    kernels.readout(events.numpy(), membranes.numpy(), after.numpy(), predictions)
    expected = lex_argmax(before + events.cumsum(0), membranes, dim=2)
    assert np.array_equal(predictions, expected.numpy())


def test_window_table_marks_padding() -> None:
    # 3 x 3 windows, stride 2, padding 1 on a 3 x 3 plane: 2 x 2 windows; the first window
    # covers rows -1..1, cols -1..1: only (0,0),(0,1),(1,0),(1,1) = 0, 1, 3, 4 are inside
    table = kernels.window_table(MaxPool2d((3, 3), (2, 2), (1, 1)), 3, 3)
    assert table.shape == (4, 9)
    assert table[0].tolist() == [9, 9, 9, 9, 0, 1, 9, 3, 4]
    assert table[3].tolist() == [4, 5, 9, 7, 8, 9, 9, 9, 9]


def test_block_length_is_bounded_by_memory() -> None:
    g = torch.Generator().manual_seed(0)
    net = cnn_chain(g)
    x = torch.rand(2, 1, 12, 12, generator=g)
    stages = net.stages()
    kinds = signal_kinds(stages, InputCoding.CONSTANT)
    run = LayerwiseRun(stages, kinds, x, IFParams(), InputCoding.CONSTANT, None)
    assert {p: g.index for p, g in run.fused.items()} == {0: 2, 3: 5}  # both conv + pool
    assert run.block_steps(10) == 10
    big = torch.rand(2**10, 1, 12, 12, generator=g)
    run = LayerwiseRun(stages, kinds, big, IFParams(), InputCoding.CONSTANT, None)
    # the widest stored tensor is the second convolution's current, 5 x 6 x 6 = 180 float32
    # per sample and step; the first population (4 x 12 x 12, constant current) is fused
    # with its max-pool and its spikes are never stored
    assert run.block_steps(1000) == 16 * 2**20 // (4 * 2**10 * 180) == 22


def test_bad_schedule_and_block() -> None:
    net = mlp(torch.Generator().manual_seed(0))
    x = torch.rand(2, 10)
    with pytest.raises(ValueError, match="allowed: 'layer', 'step'"):
        simulate(net, x, 4, IFParams(), InputCoding.CONSTANT, schedule="event")
    with pytest.raises(ValueError, match="block_steps must be >= 1"):
        simulate(net, x, 4, IFParams(), InputCoding.CONSTANT, block_steps=0)
