"""Waveforms of one sample, as the paper's Fig. 8(b) and Fig. 9: input PWM signals, hidden
membrane potentials (exact, piecewise linear, from the event simulator) and output spikes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikecast.io.atomic import atomic_write
from spikecast.schemes.ssnn import SSNNModel
from spikecast.schemes.ssnn.sim_event import record_sample


@dataclass(frozen=True)
class SampleTrace:
    """Everything needed to draw one sample: times in s, potentials in V."""

    duty: np.ndarray
    phase: np.ndarray
    period: float
    window: float
    hidden: list[int]
    trace_t: np.ndarray
    trace_v: np.ndarray
    hidden_spikes: list[np.ndarray]
    output_spikes: list[np.ndarray]
    v_th: float


def trace_sample(model: SSNNModel, x: torch.Tensor, hidden: list[int] | None = None) -> SampleTrace:
    """Record sample ``x`` (one sample, any shape): membranes of the first-layer neurons
    ``hidden`` (default the three that spike most on this sample) and every output
    neuron's spike times."""
    circuit = model.circuit
    if len(circuit.sizes) < 2:
        raise ValueError("traces need a hidden layer; this circuit has only an output layer")
    duty = model.duty(x.reshape(1, -1))[0]
    params = circuit.params
    phase = params.encoder.phases(circuit.n_inputs)
    if hidden is None:
        counts = (~np.isnan(record_sample(circuit, duty, phase).spike_times)).sum(1)
        hidden = np.argsort(-counts[: circuit.sizes[0]], kind="stable")[:3].tolist()
    if any(not 0 <= h < circuit.sizes[0] for h in hidden):
        raise ValueError(f"hidden neurons must lie in [0, {circuit.sizes[0]}), got {hidden}")
    rec = record_sample(circuit, duty, phase, hidden)
    out0 = sum(circuit.sizes[:-1])

    def spikes(j: int) -> np.ndarray:
        row = rec.spike_times[j]
        return row[~np.isnan(row)]

    return SampleTrace(
        duty.numpy(), phase.numpy(), params.encoder.period, params.window, hidden,
        rec.trace_t, rec.trace_v, [spikes(h) for h in hidden],
        [spikes(out0 + k) for k in range(circuit.sizes[-1])], params.v_th,
    )


def plot_trace(trace: SampleTrace, path: str | Path, n_inputs: int = 3) -> Path:
    """Three panels: ``n_inputs`` PWM inputs, hidden membranes with V_th, output rasters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_us = np.linspace(0, trace.window, 4001)
    fig, axes = plt.subplots(3, 1, figsize=(7, 6.5), sharex=True)
    for i in range(min(n_inputs, len(trace.duty))):
        high = np.mod(t_us - trace.phase[i], trace.period) < trace.duty[i] * trace.period
        axes[0].plot(t_us * 1e6, high + 1.2 * i, lw=0.8, label=f"in {i} (duty {trace.duty[i]:.2f})")
    axes[0].set_ylabel("TBSC PWM")
    axes[0].legend(fontsize=7, loc="upper right")
    for k, h in enumerate(trace.hidden):
        axes[1].plot(trace.trace_t * 1e6, trace.trace_v[:, k], lw=0.8,
                     label=f"hidden {h}: {len(trace.hidden_spikes[k])} spikes")
    axes[1].axhline(trace.v_th, color="k", ls=":", lw=0.8, label="V_th")
    axes[1].set_ylabel("membrane (V)")
    axes[1].legend(fontsize=7, loc="upper right")
    for k, times in enumerate(trace.output_spikes):
        axes[2].vlines(times * 1e6, k + 0.6, k + 1.4, lw=1.2)
    axes[2].set_yticks(range(1, len(trace.output_spikes) + 1))
    axes[2].set_ylabel("output neuron")
    axes[2].set_xlabel("time (us)")
    counts = ", ".join(str(len(t)) for t in trace.output_spikes)
    axes[2].set_title(f"output spike counts: {counts}", fontsize=9)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))
    finally:
        plt.close(fig)
