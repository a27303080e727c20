"""What the report needs from a spiking model beyond its :class:`SchemeResult`.

Three things, each first asked through a protocol the model may implement, else read from
the simulator outputs of the schemes that exist today (rate, ssnn, sigma-delta):

* the prediction trace (readout at every point of the accuracy curve) and the final
  prediction of every evaluated sample -- captured while ``evaluate`` runs, by recording
  what the model's ``simulate`` returns, so nothing is simulated twice;
* per-neuron outputs in ANN units (for :mod:`spikecast.fidelity`), on a subset;
* per-neuron spike counts (for the firing histograms), on the same subset.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spikecast.fidelity import ExposesLayerOutputs
from spikecast.graph import Network
from spikecast.latency import ExposesPredictionTrace, PredictionTrace
from spikecast.schemes.base import SpikingModel


@contextmanager
def recording(model: SpikingModel) -> Iterator[list[Any]]:
    """Collect every object ``model.simulate`` returns inside the ``with`` block."""
    original = getattr(model, "simulate", None)
    outputs: list[Any] = []
    if original is None:
        yield outputs
        return

    def recorded(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        outputs.append(out)
        return out

    model.simulate = recorded
    try:
        yield outputs
    finally:
        del model.simulate


@dataclass(frozen=True, eq=False)
class Readouts:
    """Prediction trace of every evaluated sample and the final predictions (B,)."""

    trace: PredictionTrace
    final: torch.Tensor


def _rate_readouts(outputs: list[Any]) -> Readouts:
    preds = torch.cat([o.predictions.T for o in outputs])
    steps = outputs[0].steps
    trace = PredictionTrace(tuple(float(t) for t in range(1, steps + 1)), preds, "time step")
    return Readouts(trace, preds[:, -1])


def _ssnn_readouts(model: Any, outputs: list[Any]) -> Readouts:
    preds = torch.cat([model.readout(o).predictions for o in outputs])
    times = tuple(float(t) * 1e6 for t in outputs[0].checkpoints)
    return Readouts(PredictionTrace(times, preds, "time (us)"), preds[:, -1])


def _sigma_delta_readouts(outputs: list[Any]) -> Readouts:
    rec = outputs[0] if len(outputs) == 1 else type(outputs[0]).concat(outputs)
    trace = PredictionTrace(
        tuple(float(t) for t in rec.times), torch.as_tensor(rec.pred_at), "time (TU)"
    )
    return Readouts(trace, torch.as_tensor(rec.final_pred))


def readouts(model: SpikingModel, outputs: list[Any]) -> Readouts | None:
    """Readouts from the recorded ``simulate`` outputs of a known scheme, else None."""
    if not outputs:
        return None
    first = outputs[0]
    if hasattr(first, "predictions") and hasattr(first, "steps"):
        return _rate_readouts(outputs)
    if hasattr(first, "checkpoint_counts") and hasattr(model, "readout"):
        return _ssnn_readouts(model, outputs)
    if hasattr(first, "pred_at"):
        return _sigma_delta_readouts(outputs)
    return None


def trace_from_protocol(model: SpikingModel, x: torch.Tensor) -> Readouts | None:
    """Readouts through :class:`ExposesPredictionTrace` (simulates ``x`` again)."""
    if not isinstance(model, ExposesPredictionTrace):
        return None
    trace = model.prediction_trace(x)
    return Readouts(trace, trace.predictions[:, -1])


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
    synaptic = [s for s in net.stages() if s.synaptic]
    if isinstance(model, ExposesLayerOutputs):
        outs = _flat(model.layer_outputs(x))
        return LayerProbe(outs, True, None, "")
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
