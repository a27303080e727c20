"""Event-driven kernel and time-slice simulator: golden cascades, max-pool units,
invariants on random small networks (hypothesis), agreement where it must hold."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikecast.ir.graph import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, Network, ReLU
from spikecast.schemes.sigma_delta.encoding import binarize
from spikecast.schemes.sigma_delta.neuron import activation
from spikecast.schemes.sigma_delta.program import build_program, float64_layer
from spikecast.schemes.sigma_delta.qann import qann_forward
from spikecast.schemes.sigma_delta.sim_event import EventSimulator
from spikecast.schemes.sigma_delta.sim_timeslice import TimeSliceSimulator


def t64(rows):
    return torch.tensor(rows, dtype=torch.float32)


def two_layer_net():
    l1 = Linear(t64([[1.0, 0.5], [-0.5, 1.0]]), t64([0.0, 0.25]))
    l2 = Linear(t64([[1.0, -1.0]]), t64([0.0]))
    return Network((l1, ReLU(), l2), ("fc1", "relu1", "fc2"), (2,))


FRAME = torch.tensor([[1.0, 0.6]])  # pixel 0 at t = 0, pixel 1 at t = 0.4


def test_golden_cascade_exact_rule():
    # theta .5. pixel 0: fc1[0] v=1 -> +2; fc2 gets two +.5 charges: +1, +1.
    # pixel 1: fc1[0] v=1.5 -> +1, fc1[1] v=.75 -> +1; fc2: v=1.5 -> +1, then v=1 -> -1.
    prog = build_program(two_layer_net(), (0.5, 0.5))
    sim = EventSimulator(prog, "exact")
    rec = sim.run(FRAME)
    assert rec.pos[0].tolist() == [0, 4, 3]
    assert rec.neg[0].tolist() == [0, 0, 1]
    assert rec.updates[0].tolist() == [4, 4, 0]  # 2 input spikes x 2 targets, 4 spikes x 1
    assert rec.input_spikes.tolist() == [2]
    state = sim.final_state(FRAME[0])
    assert state.count[1].tolist() == [3, 1]
    assert state.count[2].tolist() == [2]
    assert state.v[2].tolist() == [1.0]


def test_golden_cascade_paper_rule():
    # pixel 0: fc1[0] +1 -> fc2 +1. pixel 1: fc1[0] +1, fc1[1] +1 -> fc2 +1, then -1.
    sim = EventSimulator(build_program(two_layer_net(), (0.5, 0.5)), "paper")
    rec = sim.run(FRAME)
    assert rec.pos[0].tolist() == [0, 3, 2]
    assert rec.neg[0].tolist() == [0, 0, 1]
    state = sim.final_state(FRAME[0])
    assert state.count[1].tolist() == [2, 1]
    assert state.v[2].tolist() == [0.5]


def test_time_slice_sums_charges_of_a_slice():
    # Documented difference: in the pixel-1 slice fc2 receives +.5 and -.5 together and
    # does not fire, where the event-driven neuron fired +1 then -1.
    prog = build_program(two_layer_net(), (0.5, 0.5))
    rec = TimeSliceSimulator(prog, "exact").run(FRAME)
    assert rec.pos[0].tolist() == [0, 4, 2]
    assert rec.neg[0].tolist() == [0, 0, 0]
    assert rec.out_q[0].tolist() == [2]


def test_bias_above_theta_fires_at_time_zero():
    net = Network((Linear(t64([[1.0]]), t64([1.25])),), ("fc",), (1,))
    rec = EventSimulator(build_program(net, (0.5,)), "exact").run(torch.zeros(1, 1))
    assert rec.pos[0].tolist() == [0, 2]
    assert rec.spikes_at[0, 0] == 2  # already at the first time point, t = 0


def maxpool_net():
    # input (1,1,3): conv kernel (1,2) weights [1, -1] -> n0 = a - b, n1 = b - c; max-pool
    conv = Conv2d(t64([[[[1.0, -1.0]]]]), None, (1, 1), (0, 0))
    layers = (conv, ReLU(), MaxPool2d((1, 2), (1, 2)), Flatten(), Linear(t64([[1.0]]), None))
    return Network(layers, ("conv", "relu", "pool", "flat", "fc"), (1, 1, 3))


def test_max_pool_unit_sends_changes_of_its_window_max():
    # a (t=0): n0 +1 -> max 0->1, one +1 message. b (t=.5): targets in table order n1
    # (+1, max stays 1), n0 (-1, max stays 1 since n1=1). c (t=.7): n1 -1 -> max 1->0, -1.
    frame = torch.tensor([[[1.0, 0.5, 0.3]]])
    sim = EventSimulator(build_program(maxpool_net(), (1.0, 1.0)), "exact")
    rec = sim.run(frame)
    assert rec.pool_msgs[0].tolist() == [0, 0, 2, 0]
    # 2 + 1 + 1 input targets; conv spikes only reach the pool unit (routing); 2 messages
    assert rec.updates[0].tolist() == [4, 0, 2, 0]
    state = sim.final_state(frame[0])
    assert state.count[1].tolist() == [0, 0]
    assert state.count[2].tolist() == [0]
    assert rec.pos[0, 3] == 1 and rec.neg[0, 3] == 1


def random_network(rng, conv, pool, nonneg):
    def w(*shape):
        a = rng.normal(0, 0.6, shape)
        return torch.tensor(np.abs(a) if nonneg else a, dtype=torch.float32)

    if not conv:
        n_in, h = int(rng.integers(2, 7)), int(rng.integers(1, 6))
        layers = (Linear(w(h, n_in), w(h)), ReLU(), Linear(w(3, h), w(3)))
        return Network(layers, ("fc1", "r1", "fc2"), (n_in,))
    stride = int(rng.integers(1, 3))
    padding = int(rng.integers(0, 2))
    c1 = Conv2d(w(2, 1, 3, 3), w(2), (stride, stride), (padding, padding))
    route = MaxPool2d((2, 2), (1, 1)) if pool == "max" else AvgPool2d((2, 2), (2, 2), (1, 1))
    layers = [c1, ReLU(), route]
    names = ["conv", "r1", "pool"]
    if pool == "avg":
        layers.append(ReLU())
        names.append("r2")
    net = Network(tuple(layers), tuple(names), (1, 6, 6))
    flat = int(np.prod(net.shapes()[-1]))
    fc = Linear(w(3, flat), w(3))
    return Network((*layers, Flatten(), fc), (*names, "flat", "fc"), (1, 6, 6))


def check_invariants(net, prog, thetas, frame, counts, vs, exact):
    """After all events: v_l = W_l route(Vq_{l-1}) + b_l for every population, the input
    count is the 1-bit input, pool counts are window maxima, and (EXACT) |f(v) - Vq| < theta."""
    node = 0
    values = binarize(frame, 0.2).to(torch.float64).reshape(1, -1)
    assert torch.equal(torch.as_tensor(counts[0], dtype=torch.float64), values[0])
    theta_prev = 1.0
    pop = 0
    for stage in prog.node_stage[1:]:
        node += 1
        shaped = (torch.as_tensor(counts[node - 1], dtype=torch.float64) * theta_prev)
        shaped = shaped.reshape(1, *stage.in_shape)
        out = float64_layer(stage.layer).forward(shaped).reshape(-1)
        if isinstance(stage.layer, MaxPool2d):
            assert np.array_equal(counts[node], (out / theta_prev).round().numpy())
            continue
        np.testing.assert_allclose(vs[node], out.numpy(), rtol=0, atol=1e-9)
        theta = thetas[pop]
        pop += 1
        if exact:
            f = activation(torch.as_tensor(vs[node]), stage.relu).numpy()
            assert np.all(np.abs(f - counts[node] * theta) < theta + 1e-9)
        theta_prev = theta


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    conv=st.booleans(),
    pool=st.sampled_from(["max", "avg"]),
    rule=st.sampled_from(["exact", "paper"]),
)
def test_final_state_invariant_random_networks(seed, conv, pool, rule):
    rng = np.random.default_rng(seed)
    net = random_network(rng, conv, pool, nonneg=False)
    n_pop = 3 if conv and pool == "avg" else 2
    thetas = tuple(float(t) for t in rng.uniform(0.1, 1.0, n_pop))
    prog = build_program(net, thetas)
    frame = torch.tensor(rng.uniform(0, 1, net.input_shape))
    state = EventSimulator(prog, rule).final_state(frame)
    check_invariants(net, prog, thetas, frame, state.count, state.v, rule == "exact")
    ev = EventSimulator(prog, rule).run(frame[None])
    for m in prog.populations():  # signed spikes sum to the final count
        assert ev.pos[0, m] - ev.neg[0, m] == state.count[m].sum()
    assert np.array_equal(ev.out_q[0], state.count[-1])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), conv=st.booleans(), pool=st.sampled_from(["max", "avg"]))
def test_nonnegative_weights_event_equals_time_slice_equals_qann(seed, conv, pool):
    # With w >= 0 every potential only rises, so hysteresis = floor quantization: both
    # simulators and the Q-ANN agree exactly (EXACT rule).
    rng = np.random.default_rng(seed)
    net = random_network(rng, conv, pool, nonneg=True)
    n_pop = 3 if conv and pool == "avg" else 2
    thetas = tuple(float(t) for t in rng.uniform(0.1, 1.0, n_pop))
    prog = build_program(net, thetas)
    frames = torch.tensor(rng.uniform(0, 1, (4, *net.input_shape)))
    ev = EventSimulator(prog, "exact").run(frames)
    ts = TimeSliceSimulator(prog, "exact").run(frames)
    for name in ("pos", "neg", "updates", "pool_msgs", "out_q", "pred_at", "spikes_at"):
        assert np.array_equal(getattr(ev, name), getattr(ts, name)), name
    qann = qann_forward(net, frames, thetas)
    position = {s.index: k for k, s in enumerate(net.stages())}
    for pop, m in enumerate(prog.populations()[:-1]):
        levels = qann[position[prog.node_stage[m].index]].reshape(4, -1) / thetas[pop]
        assert np.array_equal(ev.pos[:, m], levels.round().sum(1).numpy().astype(np.int64))
    assert np.all(ev.neg[:, :-1] == 0)


def test_single_layer_distinct_times_event_equals_time_slice():
    # One synaptic layer, one input spike per timestamp: every slice is a single event.
    rng = np.random.default_rng(3)
    weight = torch.tensor(rng.normal(0, 1, (4, 5)), dtype=torch.float32)
    net = Network((Linear(weight, None),), ("fc",), (5,))
    frames = torch.tensor([[0.9, 0.7, 0.5, 0.3, 0.25], [0.3, 0.95, 0.45, 0.8, 0.6]])
    for rule in ("exact", "paper"):
        prog = build_program(net, (0.3,))
        ev = EventSimulator(prog, rule).run(frames)
        ts = TimeSliceSimulator(prog, rule).run(frames)
        for name in ("pos", "neg", "out_q", "pred_at", "spikes_at", "updates_at"):
            assert np.array_equal(getattr(ev, name), getattr(ts, name)), (rule, name)


def test_delay_shifts_the_clock_only():
    prog = build_program(two_layer_net(), (0.5, 0.5))
    base = EventSimulator(prog, "exact").run(FRAME)
    late = EventSimulator(prog, "exact", delay=0.05).run(FRAME)
    assert np.allclose(late.times, base.times + 2 * 0.05)
    assert np.array_equal(late.pred_at, base.pred_at)
    assert np.array_equal(late.pos, base.pos)
    with pytest.raises(ValueError, match="delay"):
        EventSimulator(prog, "exact", delay=-1.0)


def test_threshold_count_must_match_populations():
    with pytest.raises(ValueError, match="1 thresholds for 2"):
        build_program(two_layer_net(), (0.5,))


def test_network_must_end_in_a_synaptic_layer():
    conv = Conv2d(t64([[[[1.0]]]]), None, (1, 1), (0, 0))
    net = Network((conv, ReLU(), MaxPool2d((2, 2), (2, 2))), ("a", "b", "c"), (1, 2, 2))
    with pytest.raises(ValueError, match="last layer"):
        build_program(net, (1.0,))


@pytest.mark.parametrize("simulator", [EventSimulator, TimeSliceSimulator])
@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_simulators_reject_input_threshold_outside_unit_interval(simulator, bad) -> None:
    net = Network((Linear(torch.ones(2, 3)),), ("l",), (3,))
    with pytest.raises(ValueError, match=r"input_threshold must be in \[0, 1\)"):
        simulator(build_program(net, (1.0,)), input_threshold=bad)
