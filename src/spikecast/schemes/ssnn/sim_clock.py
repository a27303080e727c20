"""Batched clock-driven simulation of the SSNN circuit in torch (step ``dt``, default 1 ns).

Each step [t, t + dt) gives every source its exact high fraction: a PWM generator's on-time
in the step (from its cumulative on-time) and a neuron's pulse overlap with the step (from
its sub-step spike time). Each neuron layer then integrates the mean current over the step
with :func:`spikecast.schemes.ssnn.neuron.step` (linear crossing interpolation, exact floor at 0),
and layers are updated in order so a spike reaches the next layer in the same step. The
result equals the event-driven simulator whenever each step holds at most one event per
neuron; otherwise it converges to it as dt shrinks. It runs on the ``device`` of the
setting (:mod:`spikecast.device`) and returns CPU tensors.
"""

from __future__ import annotations

import torch

from spikecast.device import Device, resolve_device
from spikecast.schemes.ssnn.circuit import (
    pulse_fraction,
    pwm_on_time,
)
from spikecast.schemes.ssnn.network import CircuitNetwork
from spikecast.schemes.ssnn.neuron import NeuronParams, NeuronState, step
from spikecast.schemes.ssnn.sim_event import EventResult, checkpoint_times


def simulate_clock(
    net: CircuitNetwork,
    duty: torch.Tensor,
    phase: torch.Tensor,
    dt: float = 1e-9,
    n_points: int = 50,
    device: Device | str = Device.CPU,
) -> EventResult:
    """Simulate ``duty`` (B, n_inputs) with step ``dt`` on ``device``; same result record as
    the event simulator (checkpoints are rounded to the nearest step end)."""
    p = net.params
    if not dt > 0:
        raise ValueError(f"dt must be > 0 s, got {dt}")
    if dt > p.t_refractory:
        raise ValueError(
            f"dt={dt} s exceeds spike_width + t_ref = {p.t_refractory} s (one spike per step)"
        )
    n_steps = max(1, round(p.window / dt))
    cps = checkpoint_times(p.window, n_points)
    cp_steps = {max(1, round(float(c) / dt)): k for k, c in enumerate(cps)}
    where = resolve_device(device)
    duty, phase = duty.double().to(where), phase.to(where)
    weights = [w.to(where) for w in net.weights]
    biases = [b.to(where) for b in net.biases]
    v_th = [v.to(where) for v in net.v_th]
    batch = duty.shape[0]
    states = [_on(NeuronState.rest((batch, len(v)), v.cpu() * p.v_init), where) for v in v_th]
    neuron_p = [NeuronParams(v, p.t_refractory, dt) for v in v_th]
    counts = [torch.zeros(batch, n, dtype=torch.int64, device=where) for n in net.sizes]
    cp_counts = torch.zeros(batch, n_points, net.sizes[-1], dtype=torch.int64, device=where)
    cp_v = torch.zeros(batch, n_points, net.sizes[-1], dtype=torch.float64, device=where)
    period = p.encoder.period
    on_before = pwm_on_time(duty, phase, period, 0.0)
    for k in range(n_steps):
        t = k * dt
        on_after = pwm_on_time(duty, phase, period, t + dt)
        high = (on_after - on_before) / dt
        on_before = on_after
        for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
            drive = high @ w.T + b
            spikes, states[layer] = step(drive, states[layer], neuron_p[layer])
            counts[layer] += spikes
            high = pulse_fraction(states[layer].last_spike, p.spike_width, t, dt)
        if k + 1 in cp_steps:
            cp = cp_steps[k + 1]
            cp_counts[:, cp] = counts[-1]
            cp_v[:, cp] = states[-1].v
    return EventResult([c.cpu() for c in counts], cp_counts.cpu(), cp_v.cpu(), cps)


def _on(state: NeuronState, device: torch.device) -> NeuronState:
    return NeuronState(state.v.to(device), state.refractory_end.to(device),
                       state.last_spike.to(device), state.t)
