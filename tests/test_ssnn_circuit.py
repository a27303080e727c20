"""SSNN circuit: encoder, neuron step, golden spike times, floor at 0, parameter errors."""

import math

import numpy as np
import pytest
import torch

from spikecast.schemes.ssnn.circuit import (
    CircuitParams,
    PWMEncoder,
    pulse_fraction,
    pwm_on_time,
)
from spikecast.schemes.ssnn.network import DenseLayer, build_circuit
from spikecast.schemes.ssnn.neuron import NeuronParams, NeuronState, step
from spikecast.schemes.ssnn.sim_clock import simulate_clock
from spikecast.schemes.ssnn.sim_event import record_sample, simulate_events

NS = 1e-9
T_REFRACTORY = 1 / 5.3e6  # spike_width + t_ref by default


def single_neuron(i_unit: float, bias: float = 0.0, window: float = 5e-6):
    """One input -> one neuron, weight 1: slope = i_unit / 1 pF (3 uA -> 3 mV/ns)."""
    layer = DenseLayer("fc", torch.ones(1, 1, dtype=torch.float64),
                       torch.full((1,), bias, dtype=torch.float64))
    return build_circuit([layer], CircuitParams(window=window), (i_unit,))


def test_encoder_maps_half_volt_to_half_duty():
    enc = PWMEncoder()
    x = torch.tensor([0.0, 0.375, 1.0])  # 0.2 V, 0.5 V, 1.0 V
    assert torch.allclose(enc.duty(x), torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64))
    on = pwm_on_time(enc.duty(x[1:2]), torch.zeros(1, dtype=torch.float64), enc.period, 400e-9)
    assert float(on[0]) == pytest.approx(200e-9)


def test_pwm_on_time_matches_sampled_signal():
    rng = np.random.default_rng(0)
    duty = torch.from_numpy(rng.uniform(0, 1, 7))
    phase = torch.from_numpy(rng.uniform(0, 400e-9, 7))
    t = 1234e-9
    grid = np.arange(0, t, 0.01e-9) + 0.005e-9
    u = np.mod(grid[None, :] - phase.numpy()[:, None], 400e-9)
    sampled = (u < duty.numpy()[:, None] * 400e-9).sum(1) * 0.01e-9
    got = pwm_on_time(duty, phase, 400e-9, t).numpy()
    assert np.allclose(got, sampled, atol=0.02e-9)


def test_random_phases_are_seeded_and_inside_one_period():
    a = PWMEncoder(phase="random", phase_seed=3).phases(50)
    b = PWMEncoder(phase="random", phase_seed=3).phases(50)
    assert torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) < 400e-9
    assert torch.equal(PWMEncoder().phases(4), torch.zeros(4, dtype=torch.float64))


def test_golden_spike_times_half_duty():
    """3 mV/ns while on (200 of 400 ns): 0.6 V per period, 0.9 V reached 100 ns into the
    second period (t = 500 ns); reset loses the rest, the refractory time (188.7 ns) ends
    in the off phase, so the pattern repeats every 800 ns: 500, 1300, ..., 4500 ns."""
    net = single_neuron(3e-6)
    rec = record_sample(net, torch.tensor([0.5], dtype=torch.float64),
                        torch.zeros(1, dtype=torch.float64))
    times = rec.spike_times[0][~np.isnan(rec.spike_times[0])]
    assert np.allclose(times / NS, [500, 1300, 2100, 2900, 3700, 4500], atol=1e-6)


def test_golden_refractory_discards_charge():
    """6 mV/ns: threshold after 150 ns, then 188.7 ns of reset swallow the remaining 50 ns
    of on-time, so one spike per period at 150 + 400 k ns."""
    net = single_neuron(6e-6, window=1e-6)
    rec = record_sample(net, torch.tensor([0.5], dtype=torch.float64),
                        torch.zeros(1, dtype=torch.float64))
    times = rec.spike_times[0][~np.isnan(rec.spike_times[0])]
    assert np.allclose(times / NS, [150, 550, 950], atol=1e-6)


def test_floor_at_zero_under_negative_current():
    """Input phase 200 ns, bias -0.25: 0 V until 200 ns (floor), +2.25 mV/ns on, -0.75 off:
    0.45, 0.30, 0.75, 0.60 V at 400..1000 ns, threshold at 1000 + 0.3 / 2.25e-3 ns. Without
    the floor the first spike would come at 1200 ns."""
    net = single_neuron(3e-6, bias=-0.25, window=1.5e-6)
    phase = torch.tensor([200e-9], dtype=torch.float64)
    rec = record_sample(net, torch.tensor([0.5], dtype=torch.float64), phase, trace=[0])
    assert rec.spike_times[0][0] / NS == pytest.approx(1000 + 0.3 / 2.25e-3, abs=1e-6)
    assert rec.trace_v.min() >= 0.0
    at_200 = np.interp(200e-9, rec.trace_t, rec.trace_v[:, 0])
    assert at_200 == pytest.approx(0.0, abs=1e-12)
    clock = simulate_clock(net, torch.tensor([[0.5]]), phase, dt=1e-9)
    assert int(clock.counts[0][0, 0]) == 1


def test_step_floor_and_crossing_interpolation():
    p = NeuronParams(torch.tensor([0.9, 0.9], dtype=torch.float64), 100e-9, 10e-9)
    state = NeuronState(torch.tensor([0.1, 0.5], dtype=torch.float64),
                        torch.full((2,), -math.inf, dtype=torch.float64),
                        torch.full((2,), -math.inf, dtype=torch.float64), 0.0)
    x = torch.tensor([-1e9, 8e7], dtype=torch.float64)  # -1 V/ns floors; +0.08 V/ns crosses
    spikes, new = step(x, state, p)
    assert spikes.tolist() == [False, True]
    assert new.v.tolist() == [0.0, 0.0]
    assert float(new.last_spike[1]) == pytest.approx(0.4 / 8e7)
    assert float(new.refractory_end[1]) == pytest.approx(0.4 / 8e7 + 100e-9)
    assert new.t == pytest.approx(10e-9)


def test_pulse_fraction_overlap():
    last = torch.tensor([-math.inf, 3e-9, 0.5e-9], dtype=torch.float64)
    frac = pulse_fraction(last, 2e-9, 2e-9, 2e-9)  # step [2, 4) ns, pulses [t_s, t_s + 2 ns)
    assert frac.tolist() == pytest.approx([0.0, 0.5, 0.25])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"c_mem": -1e-12}, "c_mem"),
        ({"v_th": 0.0}, "v_th"),
        ({"window": 0.0}, "window"),
        ({"window": -5e-6}, "window"),
        ({"spike_width": 0.0}, "spike_width"),
        ({"t_ref": -1e-9}, "t_ref"),
        ({"i_unit": -1e-6}, "i_unit"),
        ({"mismatch_pct": -1.0}, "mismatch_pct"),
        ({"v_init": 1.0}, "v_init"),
    ],
)
def test_invalid_circuit_params(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CircuitParams(**kwargs)


def test_invalid_encoder_and_duty():
    with pytest.raises(ValueError, match="v_min"):
        PWMEncoder(v_min=0.5, v_max=0.4)
    with pytest.raises(ValueError, match="phase must be one of 'aligned', 'random'"):
        PWMEncoder(phase="sideways")
    with pytest.raises(ValueError, match=r"duty outside \[0, 1\]"):
        PWMEncoder().duty(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="duty must lie"):
        pwm_on_time(torch.tensor([1.2], dtype=torch.float64),
                    torch.zeros(1, dtype=torch.float64), 400e-9, 1e-6)


def test_max_rate_and_spike_width_trade():
    p = CircuitParams()
    assert p.t_refractory == pytest.approx(T_REFRACTORY)
    assert p.max_rate == pytest.approx(5.3e6)
    q = p.with_spike_width(20e-9)
    assert q.spike_width == 20e-9 and q.max_rate == pytest.approx(5.3e6)


def test_event_counts_never_exceed_max_rate():
    net = single_neuron(1e-3)  # enormous drive: saturates at one spike per refractory time
    res = simulate_events(net, torch.tensor([[1.0]], dtype=torch.float64),
                          torch.zeros(1, dtype=torch.float64))
    assert int(res.counts[0][0, 0]) == math.floor(5e-6 / T_REFRACTORY) + 1


def test_golden_precharged_membrane():
    """v_init = 0.5: C starts at 0.45 V, so 150 ns of 3 mV/ns reach threshold; after the
    reset the half-duty pattern needs 1.5 periods again: 150, 900, 1700 ns."""
    layer = DenseLayer("fc", torch.ones(1, 1, dtype=torch.float64),
                       torch.zeros(1, dtype=torch.float64))
    net = build_circuit([layer], CircuitParams(window=2e-6, v_init=0.5), (3e-6,))
    rec = record_sample(net, torch.tensor([0.5], dtype=torch.float64),
                        torch.zeros(1, dtype=torch.float64))
    times = rec.spike_times[0][~np.isnan(rec.spike_times[0])]
    assert np.allclose(times / NS, [150, 900, 1700], atol=1e-6)
    clock = simulate_clock(net, torch.tensor([[0.5]]), torch.zeros(1, dtype=torch.float64))
    assert int(clock.counts[0][0, 0]) == 3
