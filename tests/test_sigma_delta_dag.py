"""Sigma-delta on DAG networks (Add, Concat): a hand-computed residual cascade, the
composed-projection invariant on the residual and inception models and on random DAGs
(hypothesis), event-driven == time-slice == Q-ANN where they must agree, clear refusals."""

import numpy as np
import pytest
import torch
from dag_models import Inception, ResidualBlock, trained_like
from hypothesis import given, settings
from hypothesis import strategies as st

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
from spikecast.schemes import convert, get_recipe
from spikecast.schemes.sigma_delta import tables as tables_module
from spikecast.schemes.sigma_delta.encoding import binarize
from spikecast.schemes.sigma_delta.neuron import activation
from spikecast.schemes.sigma_delta.program import NodeKind, build_program, float64_layer
from spikecast.schemes.sigma_delta.qann import qann_forward
from spikecast.schemes.sigma_delta.recipe import PAPER_SETTINGS
from spikecast.schemes.sigma_delta.sim_event import EventSimulator
from spikecast.schemes.sigma_delta.sim_timeslice import TimeSliceSimulator


def residual_scalar() -> Network:
    """h = relu(x0 + x1); out = relu(proj(h) + x) with proj = [[1.5], [-1]] (no ReLU)."""
    return Network(
        (Linear(torch.tensor([[1.0, 1.0]])), ReLU(), Linear(torch.tensor([[1.5], [-1.0]])),
         Add((1.0, 1.0)), ReLU()),
        ("h", "h.relu", "proj", "out", "out.relu"), (2,),
        ((INPUT,), (0,), (1,), (2, INPUT), (3,)),
    )


FRAME = torch.tensor([[0.6, 1.0]])  # x1 at t = 0, x0 at t = 0.4


def test_residual_cascade_golden():
    # theta 1, EXACT. Edges: input -> h (1, 1), input -> out (skip, identity), h -> out
    # (proj composed with the Add weight: 1.5, -1). Input spikes update h before out.
    # t=0, x1: h v=1 -> h+1; out1 v=1 -> out1+1; then h's spike: out0 v=1.5 -> out0+1,
    #          out1 v=0 -> out1-1 (it fired before the inhibition arrived)
    # t=.4, x0: h v=2 -> h+1; out0 v=2.5 -> out0+1; h's spike: out0 v=4 -> out0+2,
    #          out1 v=-1 -> relu 0, quiet
    prog = build_program(residual_scalar(), (1.0, 1.0))
    assert prog.node_kind.tolist() == [NodeKind.INPUT, NodeKind.POPULATION, NodeKind.POPULATION]
    assert prog.edge_dst.tolist() == [1, 2, 2]  # node 0 -> h, out; h -> out
    ptr, tgt, wt = prog.edge_table(2)
    assert ptr.tolist() == [0, 2] and tgt.tolist() == [0, 1] and wt.tolist() == [1.5, -1.0]
    sim = EventSimulator(prog, "exact")
    rec = sim.run(FRAME)
    assert rec.pos[0].tolist() == [0, 2, 5]
    assert rec.neg[0].tolist() == [0, 0, 1]
    assert rec.spikes_at[0, 0] == 4  # h+1, out1+1, out0+1, out1-1 at t = 0
    assert rec.spikes_at[0, -1] == 8
    assert rec.updates[0].tolist() == [4, 4, 0]  # 2 input spikes x (1 + 1), 2 h spikes x 2
    assert rec.updates_in[0].tolist() == [0, 2, 6]
    state = sim.final_state(FRAME[0])
    assert state.count[1].tolist() == [2] and state.v[1].tolist() == [2.0]
    assert state.count[2].tolist() == [4, 0] and state.v[2].tolist() == [4.0, -1.0]
    # one slice per timestamp: out1 receives +1 and -1 together and stays quiet; in the
    # second slice out0 gets 1 + 1.5 at once: v 4 -> +3
    ts = TimeSliceSimulator(prog, "exact").run(FRAME)
    assert ts.pos[0].tolist() == [0, 2, 4] and ts.neg[0].tolist() == [0, 0, 0]
    assert ts.updates_in[0].tolist() == [0, 2, 6]


def test_residual_cascade_paper_rule():
    # at most one spike per update: t=0: h+1, out1+1, (h spike) out0 v=1.5 +1, out1 v=0 -1;
    # t=.4: h v=2 +1, out0 v=2.5 d=1.5 +1, (h spike) out0 v=4 d=2 +1
    rec = EventSimulator(build_program(residual_scalar(), (1.0, 1.0)), "paper").run(FRAME)
    assert rec.pos[0].tolist() == [0, 2, 4] and rec.neg[0].tolist() == [0, 0, 1]
    assert rec.out_q[0].tolist() == [3, 0]


def check_invariant(net, prog, frame, state, exact):
    """Oracle on the network's own layers (float64): feeding every population's quantized
    output theta * count (and the 1-bit input) through the layers between populations
    gives each population's final V; pool nodes hold the window maxima of their source's
    counts; (EXACT) |f(v) - Vq| < theta."""
    values = {INPUT: binarize(frame, 0.2).to(torch.float64).reshape(1, *net.input_shape)}
    assert np.array_equal(state.count[0], values[INPUT].reshape(-1).numpy())
    node_of = {prog.node_stage[m].index: m for m in prog.populations()}
    for s in net.stages():
        z = float64_layer(s.layer).forward(*(values[k] for k in s.sources))
        if s.population:
            m = node_of[s.index]
            np.testing.assert_allclose(state.v[m], z.reshape(-1).numpy(), rtol=0, atol=1e-9)
            theta = prog.node_theta[m]
            if exact:
                f = activation(torch.as_tensor(state.v[m]), s.relu).numpy()
                assert np.all(np.abs(f - state.count[m] * theta) < theta + 1e-9)
            z = torch.as_tensor(state.count[m] * theta, dtype=torch.float64)
            z = z.reshape(1, *s.out_shape)
        values[s.index] = z
    for m in range(prog.n_nodes):
        if prog.node_kind[m] == NodeKind.POOL:
            src = prog.pool_source[m]
            counts = torch.as_tensor(state.count[src], dtype=torch.float64)
            pooled = prog.node_stage[m].layer.forward(counts.reshape(1, *prog.node_shape[src]))
            assert np.array_equal(state.count[m], pooled.reshape(-1).numpy())


def models(nonneg=False):
    out = []
    for cls in (ResidualBlock, Inception):
        torch.manual_seed(5)
        model = trained_like(cls())
        if nonneg:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if not name.endswith("bias"):
                        p.abs_()
        out.append(model)
    return out


@pytest.mark.parametrize("rule", ["exact", "paper"])
def test_models_final_state_invariant(rule):
    torch.manual_seed(6)
    x = torch.rand(8, 1, 6, 6)
    for model in models():
        recipe = get_recipe("sigma-delta", **PAPER_SETTINGS | {"theta": 0.05, "rule": rule})
        snn = convert(model, recipe, x)
        assert not snn.network.is_chain
        for frame in x[:3]:
            check_invariant(snn.network, snn.program, frame, snn.final_state(frame),
                            rule == "exact")


def test_models_event_equals_time_slice_equals_qann_for_nonnegative_weights():
    # w >= 0: every potential only rises, so both simulators and the Q-ANN agree (EXACT)
    torch.manual_seed(7)
    x = torch.rand(6, 1, 6, 6)
    for model in models(nonneg=True):
        paper = PAPER_SETTINGS | {"theta": 0.2}
        ev_model = convert(model, get_recipe("sigma-delta", **paper), x)
        ts_model = convert(model, get_recipe("sigma-delta", **paper, mode="timeslice"), x)
        ev, ts = ev_model.simulate(x), ts_model.simulate(x)
        for name in ("pos", "updates", "updates_in", "pool_msgs", "out_q", "pred_at",
                     "spikes_at"):
            assert np.array_equal(getattr(ev, name), getattr(ts, name)), name
        assert np.all(ev.neg[:, :-1] == 0) and ev.pos[:, 1:].sum() > 0
        check_qann(ev_model.network, ev_model.program, ev_model.thetas, x, ev_model)
        result = ev_model.evaluate(x, torch.zeros(len(x), dtype=torch.long))
        total = sum(layer.synaptic_events for layer in result.layers)
        assert total == pytest.approx(result.details.synaptic_updates)
        assert total == pytest.approx(float(ev.updates.sum(1).mean()))


def check_qann(net, prog, thetas, x, model):
    """Hidden populations: event-driven final counts == Q-ANN levels floor(relu(z) / theta)."""
    qann = qann_forward(net, x, thetas)
    position = {s.index: k for k, s in enumerate(net.stages())}
    for m, theta in zip(prog.populations(), thetas, strict=True):
        stage = prog.node_stage[m]
        if not stage.relu:
            continue
        levels = (qann[position[stage.index]].reshape(len(x), -1) / theta).round().numpy()
        counts = np.stack([model.final_state(frame).count[m] for frame in x])
        assert np.array_equal(counts, levels), stage.name


def random_dag(rng, nonneg):
    """a = relu(conv x); r = relu(conv_b(a) + w a); c = relu(1x1 conv x);
    maxpool(cat(r, c)) -> flatten -> linear; conv_b is a current (no ReLU)."""
    def w(*shape):
        a = rng.normal(0, 0.7, shape)
        return torch.tensor(np.abs(a) if nonneg else a, dtype=torch.float32)

    skip = float(rng.uniform(0.5, 1.5)) * (1 if nonneg else float(rng.choice([-1, 1])))
    layers = (
        Conv2d(w(2, 1, 3, 3), w(2), (1, 1), (1, 1)), ReLU(),
        Conv2d(w(2, 2, 3, 3), w(2), (1, 1), (1, 1)), Add((1.0, skip)), ReLU(),
        Conv2d(w(1, 1, 1, 1), w(1)), ReLU(),
        Concat((1.0, float(rng.uniform(0.5, 2.0)))), MaxPool2d((2, 2), (2, 2)), Flatten(),
        Linear(w(3, 12), w(3)),
    )
    names = ("a", "a.relu", "b", "add", "add.relu", "c", "c.relu", "cat", "pool", "flat", "fc")
    sources = ((INPUT,), (0,), (1,), (2, 1), (3,), (INPUT,), (5,), (4, 6), (7,), (8,), (9,))
    return Network(layers, names, (1, 4, 4), sources)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), rule=st.sampled_from(["exact", "paper"]))
def test_random_dag_final_state_invariant(seed, rule):
    rng = np.random.default_rng(seed)
    net = random_dag(rng, nonneg=False)
    thetas = tuple(float(t) for t in rng.uniform(0.1, 1.0, 4))
    prog = build_program(net, thetas)
    assert [prog.node_kind[m] for m in range(prog.n_nodes)].count(NodeKind.POOL) == 2
    frame = torch.tensor(rng.uniform(0, 1, net.input_shape))
    state = EventSimulator(prog, rule).final_state(frame)
    check_invariant(net, prog, frame, state, rule == "exact")
    ev = EventSimulator(prog, rule).run(frame[None])
    for m in prog.populations():  # signed spikes sum to the final count
        assert ev.pos[0, m] - ev.neg[0, m] == state.count[m].sum()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_random_nonnegative_dag_event_equals_time_slice(seed):
    rng = np.random.default_rng(seed)
    net = random_dag(rng, nonneg=True)
    thetas = tuple(float(t) for t in rng.uniform(0.1, 1.0, 4))
    prog = build_program(net, thetas)
    frames = torch.tensor(rng.uniform(0, 1, (3, *net.input_shape)))
    ev = EventSimulator(prog, "exact").run(frames)
    ts = TimeSliceSimulator(prog, "exact").run(frames)
    for name in ("pos", "neg", "updates", "updates_in", "pool_msgs", "out_q", "pred_at",
                 "spikes_at"):
        assert np.array_equal(getattr(ev, name), getattr(ts, name)), name


def test_max_pool_fed_by_a_current_is_refused():
    net = Network(
        (Conv2d(torch.ones(1, 1, 1, 1)), MaxPool2d((2, 2), (2, 2)), Flatten(),
         Linear(torch.ones(2, 1))),
        ("conv", "pool", "flat", "fc"), (1, 2, 2),
    )
    with pytest.raises(ValueError, match=r"max-pool 'pool' is fed by 'conv'.*current"):
        build_program(net, (1.0,))


def test_max_pool_over_negatively_weighted_concat_is_refused():
    net = Network(
        (Conv2d(torch.ones(1, 1, 1, 1)), ReLU(), Concat((1.0, -1.0)),
         MaxPool2d((1, 2), (1, 2)), Flatten(), Linear(torch.ones(1, 2))),
        ("a", "ra", "cat", "pool", "flat", "fc"), (1, 1, 2),
        ((INPUT,), (0,), (1, INPUT), (2,), (3,), (4,)),
    )
    with pytest.raises(ValueError, match=r"Concat 'cat' input weight -1\.0 must be > 0"):
        build_program(net, (1.0, 1.0))


def test_composition_above_the_size_limit_is_refused(monkeypatch):
    monkeypatch.setattr(tables_module, "MAX_COMPOSED_SYNAPSES", 1)
    with pytest.raises(ValueError, match=r"population 'out'.*gives 2 synapses"):
        build_program(residual_scalar(), (1.0, 1.0))


def test_delay_needs_equal_hop_counts():
    prog = build_program(residual_scalar(), (1.0, 1.0))
    with pytest.raises(ValueError, match=r"'out' is reached after \[1, 2\] hops"):
        EventSimulator(prog, delay=0.1)
    assert EventSimulator(prog).hops == 2


def test_population_feeding_two_max_pools_is_refused():
    net = Network(
        (Conv2d(torch.ones(1, 1, 1, 1)), ReLU(), MaxPool2d((1, 2), (1, 2)),
         MaxPool2d((1, 2), (1, 2)), Concat((1.0, 1.0)), Flatten(), Linear(torch.ones(1, 2))),
        ("a", "ra", "p1", "p2", "cat", "flat", "fc"), (1, 1, 2),
        ((INPUT,), (0,), (1,), (1,), (2, 3), (4,), (5,)),
    )
    with pytest.raises(ValueError, match=r"max-pool 'p2': 'a' already feeds max-pool 'p1'"):
        build_program(net, (1.0, 1.0))


def test_pool_nodes_follow_their_sources():
    # cat(a, b) -> pool: one pool node per block, each numbered right after its source
    net = Network(
        (Conv2d(torch.ones(1, 1, 1, 1)), ReLU(), Conv2d(torch.full((1, 1, 1, 1), 0.5)), ReLU(),
         Concat((1.0, 2.0)), MaxPool2d((1, 2), (1, 2)), Flatten(), Linear(torch.ones(1, 2))),
        ("a", "ra", "b", "rb", "cat", "pool", "flat", "fc"), (1, 1, 2),
        ((INPUT,), (0,), (INPUT,), (2,), (1, 3), (4,), (5,), (6,)),
    )
    prog = build_program(net, (1.0, 0.5, 1.0))
    assert prog.node_kind.tolist() == [0, 1, 2, 1, 2, 1]
    assert prog.pool_source == (-1, -1, 1, -1, 3, -1)
    # the Concat weight 2 of b's block moves into its pool node's table into fc
    assert [prog.edge_table(e)[2].tolist() for e in range(len(prog.edge_dst))
            if prog.edge_dst[e] == 5] == [[1.0], [2.0]]
    # x = (1, .75): a = (1, .75) -> counts (1, 0), pool 1; b = (.5, .375) / .5 -> (1, 0),
    # pool 1; fc = 1 * 1 * theta_a + 2 * 1 * theta_b = 1 + 1 = 2
    state = EventSimulator(prog).final_state(torch.tensor([[[1.0, 0.75]]]))
    assert state.count[2].tolist() == [1] and state.count[4].tolist() == [1]
    assert state.v[5].tolist() == [2.0] and state.count[5].tolist() == [2]


def test_network_ending_in_flatten_reads_out_the_pooled_population():
    # conv -> relu -> global average pool (a population) -> flatten: the pool is the output
    net = Network(
        (Conv2d(torch.tensor([0.5, 1.5]).reshape(2, 1, 1, 1)), ReLU(),
         AvgPool2d((2, 2), (2, 2)), ReLU(), Flatten()),
        ("conv", "relu", "gap", "gap.relu", "flat"), (1, 2, 2),
    )
    prog = build_program(net, (1.0, 1.0))
    x = torch.ones(1, 1, 2, 2)
    rec = EventSimulator(prog).run(x)
    # every pixel fires at t = 0: conv channels reach 0.5 and 1.5 (one spike in channel 1),
    # the pool averages the quantized values (0, 1) -> (0, 1): output neuron 1 spikes once
    assert rec.out_q.tolist() == [[0, 1]] and rec.final_pred.tolist() == [1]
    ts = TimeSliceSimulator(prog).run(x)
    assert ts.out_q.tolist() == rec.out_q.tolist()


def test_frames_of_the_wrong_size_are_refused_not_simulated():
    prog = build_program(residual_scalar(), (1.0, 1.0))
    for sim in (EventSimulator(prog), TimeSliceSimulator(prog)):
        with pytest.raises(ValueError, match=r"frames of shape \(4,\); this network takes \(2,\)"):
            sim.run(torch.ones(2, 4) * 0.5)
    with pytest.raises(ValueError, match="this network takes"):
        EventSimulator(prog).final_state(torch.ones(3))
