"""Convergence: as theta -> 0 the SNN's outputs approach the ANN's on the same coded input.

Bound, computed from the compiled program: a population's potential error is
|v - z| <= sum over incoming edges of max_i sum_j |A_ij| x (error of the source's value),
its value error adds the rest band u theta (u = (1 + h) / 2, EXACT rule), a max-pool unit
carries its source's error, the input is exact (both sides see the coded input). Every
error is linear in the thetas, so the bound -> 0 with theta. Checked on a chain and on a
DAG with Add, Concat, AvgPool and MaxPool, for the event-driven and time-slice simulators;
a program whose graph lost a path (the residual skip) breaks the bound.
"""

import numpy as np
import pytest
import torch

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
from spikecast.schemes.sigma_delta.encoding import InputCoding
from spikecast.schemes.sigma_delta.neuron import band
from spikecast.schemes.sigma_delta.program import NodeKind, build_program, float64_layer
from spikecast.schemes.sigma_delta.sim_event import EventSimulator
from spikecast.schemes.sigma_delta.sim_timeslice import TimeSliceSimulator


def weights(rng, *shape):
    return torch.tensor(rng.normal(0, 0.7, shape), dtype=torch.float32)


def chain(rng):
    layers = (
        Conv2d(weights(rng, 3, 1, 3, 3), weights(rng, 3), (1, 1), (1, 1)), ReLU(),
        MaxPool2d((2, 2), (2, 2)),
        Conv2d(weights(rng, 2, 3, 3, 3), weights(rng, 2), (1, 1), (1, 1)), ReLU(),
        AvgPool2d((3, 3), (3, 3)), ReLU(), Flatten(), Linear(weights(rng, 3, 2), weights(rng, 3)),
    )
    names = ("c1", "r1", "mp", "c2", "r2", "ap", "ap.relu", "flat", "fc")
    return Network(layers, names, (1, 6, 6))


def dag(rng, skip=0.7):
    """a -> b (no ReLU) -> Add(b, skip a) -> AvgPool -> Concat with MaxPool(c) -> fc."""
    layers = (
        Conv2d(weights(rng, 2, 1, 3, 3), weights(rng, 2), (1, 1), (1, 1)), ReLU(),
        Conv2d(weights(rng, 2, 2, 3, 3), weights(rng, 2), (1, 1), (1, 1)),
        Add((1.0, skip)), ReLU(),
        AvgPool2d((2, 2), (2, 2)), ReLU(),
        Conv2d(weights(rng, 1, 1, 1, 1), weights(rng, 1)), ReLU(), MaxPool2d((2, 2), (2, 2)),
        Concat((1.0, 1.5)), Flatten(), Linear(weights(rng, 3, 27), weights(rng, 3)),
    )
    names = ("a", "a.relu", "b", "add", "add.relu", "ap", "ap.relu", "c", "c.relu", "mp",
             "cat", "flat", "fc")
    sources = ((INPUT,), (0,), (1,), (2, 1), (3,), (4,), (5,), (INPUT,), (7,), (8,), (6, 9),
               (10,), (11,))
    return Network(layers, names, (1, 6, 6), sources)


def error_bound(prog, hysteresis):
    """Per node: the bound of |v - z| (populations) and of the value error."""
    u = band(hysteresis)
    v_err, value_err = np.zeros(prog.n_nodes), np.zeros(prog.n_nodes)
    for m in range(1, prog.n_nodes):
        if prog.node_kind[m] == NodeKind.POOL:
            value_err[m] = value_err[prog.pool_source[m]]
            continue
        n_m = int(prog.node_offset[m + 1] - prog.node_offset[m])
        rows = np.zeros(n_m)
        for s in range(m):
            for e in range(int(prog.edge_ptr[s]), int(prog.edge_syn_end[s])):
                if prog.edge_dst[e] == m:
                    _, tgt, wt = prog.edge_table(e)
                    rows += np.bincount(tgt, np.abs(wt), minlength=n_m) * value_err[s]
        v_err[m] = rows.max()
        value_err[m] = v_err[m] + u * prog.node_theta[m]
    return v_err, value_err


def ann_outputs(net, frame, coding):
    """Stage outputs of the float64 ANN on the coded frame, by layer index."""
    values = {INPUT: coding.coded(frame[None])}
    for i, (layer, src) in enumerate(zip(net.layers, net.sources, strict=True)):
        values[i] = float64_layer(layer).forward(*(values[k] for k in src))
    return values


def check_converges(net, ref_net, rng, simulator, hysteresis, levels=4):
    coding = InputCoding(levels, 0.5)
    frames = torch.tensor(rng.uniform(0, 1, (3, *net.input_shape)))
    n_pop = sum(s.population for s in net.stages())
    base = rng.uniform(0.5, 1.5, n_pop)
    worst = []
    for scale in (1e-1, 1e-2, 1e-3):
        thetas = tuple(float(t) for t in base * scale)
        prog = build_program(net, thetas, coding.level)
        v_err, value_err = error_bound(prog, hysteresis)
        kw = {"hysteresis": hysteresis, "input_levels": levels}
        if simulator == "event":
            sim = EventSimulator(prog, "exact", 0.5, **kw)
            states = [(s.v, s.count) for s in map(sim.final_state, frames)]
        else:
            rec = TimeSliceSimulator(prog, "exact", 0.5, **kw).run(frames)
            states = [({prog.n_nodes - 1: rec.out_v[f]}, {prog.n_nodes - 1: rec.out_q[f]})
                      for f in range(len(frames))]
        out = prog.n_nodes - 1
        for frame, (v, count) in zip(frames, states, strict=True):
            ann = ann_outputs(ref_net, frame, coding)
            z_out = ann[len(ref_net.layers) - 1].reshape(-1).numpy()
            assert np.abs(v[out] - z_out).max() <= v_err[out] + 1e-9
            assert np.abs(count[out] * prog.node_theta[out] - z_out).max() <= value_err[out] + 1e-9
            if simulator == "event":
                for m in prog.populations()[:-1]:
                    stage = prog.node_stage[m]
                    relu = ann[stage.index + 1].reshape(-1).numpy()  # the ReLU after it
                    assert np.abs(count[m] * prog.node_theta[m] - relu).max() <= (
                        value_err[m] + 1e-9), stage.name
        worst.append(v_err[out])
    assert worst[0] > 0 and worst[2] == pytest.approx(worst[0] / 100)  # linear in theta


@pytest.mark.parametrize("simulator", ["event", "timeslice"])
@pytest.mark.parametrize("hysteresis", [0.0, 1.0])
@pytest.mark.parametrize("builder", [chain, dag])
def test_outputs_converge_to_the_ann_on_the_coded_input(builder, hysteresis, simulator):
    net = builder(np.random.default_rng(5))
    check_converges(net, net, np.random.default_rng(6), simulator, hysteresis)


def test_a_lost_graph_path_breaks_convergence():
    # the same network with its residual skip removed: the SNN converges to another function
    ref = dag(np.random.default_rng(5))
    broken = dag(np.random.default_rng(5), skip=0.0)
    with pytest.raises(AssertionError):
        check_converges(broken, ref, np.random.default_rng(6), "event", 0.0)
    check_converges(ref, ref, np.random.default_rng(6), "event", 0.0)
