"""What the report needs from a spiking model beyond its :class:`SchemeResult`.

Three things, each first asked through a protocol the model may implement, else read from
the simulator outputs of the schemes that exist today (rate, ssnn, sigma-delta):

* the prediction trace (readout at every point of the accuracy curve) and the final
  prediction of every evaluated sample -- captured while ``evaluate`` runs, by reading
  what the model's ``simulate`` returns, so nothing is simulated twice;
* per-neuron outputs in ANN units (for :mod:`spikecast.fidelity`), on a subset;
* per-neuron spike counts (for the firing histograms), on the same subset.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from spikecast.fidelity import ExposesLayerOutputs
from spikecast.graph import Network
from spikecast.latency import ExposesPredictionTrace, PredictionTrace
from spikecast.schemes.base import SpikingModel


@dataclass(frozen=True, eq=False)
class Readouts:
    """Prediction trace of every evaluated sample and the final predictions (B,)."""

    trace: PredictionTrace
    final: torch.Tensor


def _rate_readouts(out: Any) -> Readouts:
    preds = out.predictions.T
    times = tuple(float(t) for t in range(1, out.steps + 1))
    return Readouts(PredictionTrace(times, preds, "time step"), preds[:, -1])


def _ssnn_readouts(model: Any, out: Any) -> Readouts:
    preds = model.readout(out).predictions
    times = tuple(float(t) * 1e6 for t in out.checkpoints)
    return Readouts(PredictionTrace(times, preds, "time (us)"), preds[:, -1])


def _sigma_delta_readouts(out: Any) -> Readouts:
    trace = PredictionTrace(
        tuple(float(t) for t in out.times), torch.as_tensor(out.pred_at), "time (TU)"
    )
    return Readouts(trace, torch.as_tensor(out.final_pred))


def simulation_readouts(model: SpikingModel, out: Any) -> Readouts | None:
    """Readouts of one ``simulate`` output of a known scheme (rate, ssnn, sigma-delta)."""
    if hasattr(out, "predictions") and hasattr(out, "steps"):
        return _rate_readouts(out)
    if hasattr(out, "checkpoint_counts") and hasattr(model, "readout"):
        return _ssnn_readouts(model, out)
    if hasattr(out, "pred_at") and hasattr(out, "final_pred"):
        return _sigma_delta_readouts(out)
    return None


@contextmanager
def recording(model: SpikingModel) -> Iterator[list[Readouts | None]]:
    """Inside the ``with`` block, keep the readouts of every ``model.simulate`` call (only
    those: the rest of each simulator output is released)."""
    original = getattr(model, "simulate", None)
    collected: list[Readouts | None] = []
    if original is None:
        yield collected
        return

    def recorded(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        collected.append(simulation_readouts(model, out))
        return out

    model.simulate = recorded
    try:
        yield collected
    finally:
        del model.simulate


def readouts(collected: list[Readouts | None]) -> Readouts | None:
    """The recorded readouts of consecutive batches joined, or None if any is missing."""
    if not collected or any(r is None for r in collected):
        return None
    first = collected[0].trace
    if any(r.trace.times != first.times for r in collected):
        raise ValueError("recorded batches have different time points")
    preds = torch.cat([r.trace.predictions for r in collected])
    final = torch.cat([r.final for r in collected])
    return Readouts(PredictionTrace(first.times, preds, first.unit), final)


def trace_from_protocol(model: SpikingModel, x: torch.Tensor) -> Readouts | None:
    """Readouts through :class:`ExposesPredictionTrace` (simulates ``x`` again)."""
    if not isinstance(model, ExposesPredictionTrace):
        return None
    trace = model.prediction_trace(x)
    return Readouts(trace, trace.predictions[:, -1])


@runtime_checkable
class ExposesNeuronCounts(Protocol):
    """A spiking model that reports the spikes of every neuron, per synaptic stage in
    order, shape (batch, *out_shape), for the firing histograms."""

    def neuron_spike_counts(self, x: torch.Tensor) -> list[torch.Tensor]: ...


@dataclass(frozen=True, eq=False)
class LayerProbe:
    """Per synaptic stage: the SNN output (ANN units when ``scaled``) and spike counts,
    each (batch, neurons); ``count_label`` says what the counts are."""

    outputs: list[torch.Tensor] | None
    scaled: bool
    counts: list[torch.Tensor] | None
    count_label: str


def _flat(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().double().flatten(1) for t in tensors]


def probe_layers(model: SpikingModel, net: Network, x: torch.Tensor) -> LayerProbe | None:
    """Per-neuron outputs and counts of ``model`` on ``x`` (see :class:`LayerProbe`)."""
    synaptic = [s for s in net.stages() if s.population]
    if isinstance(model, ExposesLayerOutputs):
        counts = (_flat(model.neuron_spike_counts(x))
                  if isinstance(model, ExposesNeuronCounts) else None)
        return LayerProbe(_flat(model.layer_outputs(x)), True, counts, "spikes per neuron")
    if hasattr(model, "rates") and hasattr(model, "scales") and hasattr(model, "recipe"):
        sim = model.simulate(x)
        theta = model.recipe.threshold
        outs = [
            c * (theta / sim.steps) * model.scales[s.index]
            for c, s in zip(sim.counts, synaptic, strict=True)
        ]
        return LayerProbe(_flat(outs), True, _flat(list(sim.counts)), "spikes per neuron")
    if hasattr(model, "final_state") and hasattr(model, "thetas"):
        pops = model.program.populations()
        states = [model.final_state(frame) for frame in x]
        counts = [torch.as_tensor(np.stack([st.count[m] for st in states])) for m in pops]
        outs = [c * theta for c, theta in zip(counts, model.thetas, strict=True)]
        return LayerProbe(_flat(outs), True, _flat([c.abs() for c in counts]),
                          "|net signed spikes| per neuron")
    if hasattr(model, "circuit") and hasattr(model, "readout"):
        counts = _flat(list(model.simulate(x).counts))
        return LayerProbe(counts, False, counts, "spikes per neuron")
    return None
