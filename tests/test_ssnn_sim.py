"""Event-driven vs clock-driven agreement, readout rules, network building and calibration."""

import itertools

import numpy as np
import pytest
import torch

from spikecast.ir.graph import Conv2d, Flatten, Linear, MaxPool2d, Network, ReLU
from spikecast.schemes.ssnn.circuit import CircuitParams, PWMEncoder
from spikecast.schemes.ssnn.network import (
    DenseLayer,
    InputMapping,
    apply_input_mapping,
    build_circuit,
    calibrate_i_unit,
    dense_layers,
    forward_dense,
)
from spikecast.schemes.ssnn.sim_clock import simulate_clock
from spikecast.schemes.ssnn.sim_event import simulate_events


def random_circuit(seed: int, sizes=(4, 6, 3), window=2e-6, phase="aligned"):
    gen = torch.Generator().manual_seed(seed)
    layers = [
        DenseLayer(f"l{i}", torch.randn(o, n, generator=gen, dtype=torch.float64) * 0.6,
                   torch.zeros(o, dtype=torch.float64))
        for i, (n, o) in enumerate(itertools.pairwise(sizes))
    ]
    params = CircuitParams(window=window, encoder=PWMEncoder(phase=phase, phase_seed=seed))
    duty = torch.rand(3, sizes[0], generator=gen, dtype=torch.float64)
    return build_circuit(layers, params, (8e-6, 2e-4)), duty


def total_mismatch(a, b) -> int:
    return sum(int((x - y).abs().sum()) for x, y in zip(a.counts, b.counts, strict=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_event_and_clock_agree_exactly_on_sparse_events(seed):
    net, duty = random_circuit(seed)
    phase = net.params.encoder.phases(net.n_inputs)
    ev = simulate_events(net, duty, phase, n_points=4)
    ck = simulate_clock(net, duty, phase, dt=1e-9, n_points=4)
    assert sum(int(c.sum()) for c in ev.counts) > 10  # the case is not trivially silent
    assert total_mismatch(ev, ck) == 0
    assert torch.equal(ev.checkpoint_counts, ck.checkpoint_counts)
    # a crossing inside a step with several input edges is interpolated, so V agrees to ~mV
    assert torch.allclose(ev.checkpoint_v, ck.checkpoint_v, atol=0.01)


def test_clock_converges_to_event_when_events_are_dense():
    """Random phases over 40 inputs put many edges inside one 20 ns step."""
    net, duty = random_circuit(7, sizes=(40, 12, 3), window=0.6e-6, phase="random")
    phase = net.params.encoder.phases(net.n_inputs)
    ev = simulate_events(net, duty, phase, n_points=1)
    coarse = total_mismatch(ev, simulate_clock(net, duty, phase, dt=20e-9, n_points=1))
    fine = total_mismatch(ev, simulate_clock(net, duty, phase, dt=0.25e-9, n_points=1))
    spikes = sum(int(c.sum()) for c in ev.counts)
    assert fine < coarse
    assert fine <= 0.02 * spikes


def test_checkpoint_counts_are_monotone_and_end_at_totals():
    net, duty = random_circuit(3)
    ev = simulate_events(net, duty, net.params.encoder.phases(4), n_points=10)
    assert (ev.checkpoint_counts.diff(dim=1) >= 0).all()
    assert torch.equal(ev.checkpoint_counts[:, -1], ev.counts[-1])


def test_dense_layers_unroll_conv_exactly():
    gen = torch.Generator().manual_seed(0)
    conv = Conv2d(torch.randn(2, 1, 3, 3, generator=gen), torch.randn(2, generator=gen),
                  (1, 1), (1, 1))
    fc = Linear(torch.randn(3, 2 * 5 * 5, generator=gen))
    net = Network((conv, ReLU(), Flatten(), fc), ("c", "r", "f", "fc"), (1, 5, 5))
    dense = dense_layers(net)
    x = torch.rand(4, 1, 5, 5, generator=gen)
    z = forward_dense(dense, x.flatten(1))
    assert torch.allclose(z[-1], net(x).double(), atol=1e-5)


def test_maxpool_is_refused():
    conv = Conv2d(torch.ones(1, 1, 3, 3), None, (1, 1), (1, 1))
    net = Network((conv, ReLU(), MaxPool2d((2, 2), (2, 2)), Flatten(), Linear(torch.ones(2, 4))),
                  ("c", "r", "mp", "f", "fc"), (1, 4, 4))
    with pytest.raises(ValueError, match="'mp': MaxPool2d is not supported"):
        dense_layers(net)


def test_fold_mapping_preserves_ann_function():
    gen = torch.Generator().manual_seed(1)
    layer = DenseLayer("fc", torch.randn(5, 6, generator=gen, dtype=torch.float64),
                       torch.randn(5, generator=gen, dtype=torch.float64))
    enc = PWMEncoder()
    x = torch.rand(8, 6, generator=gen, dtype=torch.float64)
    folded = apply_input_mapping([layer], InputMapping.FOLD, enc.offset, enc.gain)
    assert torch.allclose(forward_dense(folded, enc.duty(x))[0], forward_dense([layer], x)[0])
    same = apply_input_mapping([layer], InputMapping.VOLTAGE, enc.offset, enc.gain)
    assert same[0] is layer


def test_calibration_puts_busiest_neuron_at_target_rate():
    """Oracle in numpy: ideal rate of layer 1 = i_unit relu(W d) / (C V_th)."""
    gen = torch.Generator().manual_seed(2)
    layers = [DenseLayer("a", torch.rand(7, 5, generator=gen, dtype=torch.float64),
                         torch.zeros(7, dtype=torch.float64)),
              DenseLayer("b", torch.rand(2, 7, generator=gen, dtype=torch.float64),
                         torch.zeros(2, dtype=torch.float64))]
    p = CircuitParams()
    duty = torch.rand(30, 5, generator=gen, dtype=torch.float64)
    units = calibrate_i_unit(layers, p, 0.5, duty, 100.0, 0.2)
    w1, w2 = layers[0].weight.numpy(), layers[1].weight.numpy()
    rate1 = units[0] * np.maximum(duty.numpy() @ w1.T, 0) / (p.c_mem * p.v_th)
    assert rate1.max() == pytest.approx(0.5 * p.max_rate)
    activity = rate1 * p.spike_width
    rate2 = units[1] * (activity @ w2.T) / (p.c_mem * p.v_th)
    assert rate2.max() == pytest.approx(0.2 * p.max_rate)
    with pytest.raises(ValueError, match="rate targets"):
        calibrate_i_unit(layers, p, 1.5, duty)


def test_mismatch_is_seeded_and_has_requested_sigma():
    layer = DenseLayer("a", torch.ones(200, 100, dtype=torch.float64),
                       torch.zeros(200, dtype=torch.float64))
    nominal = build_circuit([layer], CircuitParams(), (1e-6,))
    varied = build_circuit([layer], CircuitParams(mismatch_pct=5.0, mismatch_seed=4), (1e-6,))
    again = build_circuit([layer], CircuitParams(mismatch_pct=5.0, mismatch_seed=4), (1e-6,))
    assert torch.equal(varied.weights[0], again.weights[0])
    ratio = varied.weights[0] / nominal.weights[0]
    assert float(ratio.std()) == pytest.approx(0.05, rel=0.05)
    assert float((varied.v_th[0] / 0.9).std()) == pytest.approx(0.05, rel=0.3)
    assert torch.equal(nominal.v_th[0], torch.full((200,), 0.9, dtype=torch.float64))
