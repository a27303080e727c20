"""The SSNN neuron (Nomura et al., Fig. 6): a current-mode non-leaky integrate-and-fire cell.

    C dV/dt = sum_i I_ij(t)        (no leak; I_ij = w_ij i_unit while input i is high)
    V >= V_th  ->  spike (a pulse of width ``spike_width``), V <- 0, then the reset switch
                   shorts C for t_refractory = spike_width + t_ref (input charge is lost)
    V >= 0 always (the capacitor cannot be pulled below ground: floor at 0, exact)

:func:`step` is the pure update both simulators implement: the clock-driven simulator calls
it, and the event-driven kernel is tested equal to it (``tests/test_ssnn_circuit.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class NeuronParams:
    """Per-neuron constants of :func:`step`: thresholds (V), refractory time and step (s)."""

    v_th: torch.Tensor
    t_refractory: float
    dt: float


@dataclass(frozen=True)
class NeuronState:
    """Membrane potential (V), end of the current refractory period and time of the last
    spike (s, -inf if none), and the start time ``t`` of the next step."""

    v: torch.Tensor
    refractory_end: torch.Tensor
    last_spike: torch.Tensor
    t: float

    @staticmethod
    def rest(shape: tuple[int, ...], v: torch.Tensor | float = 0.0) -> NeuronState:
        """Initial state: membrane ``v`` (broadcast to ``shape``), no spike yet."""
        kw = {"dtype": torch.float64}
        return NeuronState(
            torch.zeros(shape, **kw) + v,
            torch.full(shape, -math.inf, **kw),
            torch.full(shape, -math.inf, **kw),
            0.0,
        )


def step(x: torch.Tensor, state: NeuronState, p: NeuronParams) -> tuple[torch.Tensor, NeuronState]:
    """Advance the IF neurons over [t, t + dt) under mean drive ``x`` = I / C (V/s).

    The neuron integrates only after its refractory period ends (at t0 = max(t, end)):
    V' = max(0, V + x (t + dt - t0)). If V' >= V_th the crossing time is interpolated
    linearly, t_c = t0 + (V_th - V) / x; then V <- 0, refractory until t_c + t_refractory.
    Exact when x is constant over the step; requires dt <= t_refractory (one spike per step).
    """
    t_end = state.t + p.dt
    t0 = torch.clamp(state.refractory_end, min=state.t)
    active = t0 < t_end
    span = torch.where(active, t_end - t0, torch.zeros_like(t0))
    v_new = torch.clamp(state.v + x * span, min=0.0)
    spikes = active & (v_new >= p.v_th)
    slope = torch.where(spikes, x, torch.ones_like(x))
    t_cross = torch.clamp(t0 + (p.v_th - state.v) / slope, max=t_end)
    v_new = torch.where(spikes, torch.zeros_like(v_new), v_new)
    refractory_end = torch.where(spikes, t_cross + p.t_refractory, state.refractory_end)
    last_spike = torch.where(spikes, t_cross, state.last_spike)
    return spikes, NeuronState(v_new, refractory_end, last_spike, t_end)
