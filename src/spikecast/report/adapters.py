"""What the report needs from a spiking model beyond its :class:`SchemeResult` totals, each
asked through a protocol:

* the prediction trace (readout of every evaluated sample at every point of the accuracy
  curve): ``SchemeResult.trace``, which every built-in scheme fills while it evaluates, else
  :class:`~spikecast.measure.latency.ExposesPredictionTrace` (simulates again);
* per-neuron outputs in ANN units (for :mod:`spikecast.measure.fidelity`) through
  :class:`~spikecast.measure.fidelity.ExposesLayerOutputs`, and per-neuron spike counts (for the
  firing histograms) through :class:`ExposesNeuronCounts`, on a subset of samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from spikecast.measure.fidelity import ExposesLayerOutputs
from spikecast.measure.latency import ExposesPredictionTrace, PredictionTrace
from spikecast.measure.result import SchemeResult
from spikecast.schemes.base import SpikingModel

DEFAULT_COUNT_LABEL = "spikes per neuron"


@dataclass(frozen=True, eq=False)
class Readouts:
    """Prediction trace of every evaluated sample and the final predictions (B,)."""

    trace: PredictionTrace
    final: torch.Tensor


def scheme_readouts(model: SpikingModel, result: SchemeResult, x: torch.Tensor
                    ) -> Readouts | None:
    """The trace ``result`` carries, else the model's through the protocol, else None."""
    trace = result.trace
    if trace is None and isinstance(model, ExposesPredictionTrace):
        trace = model.prediction_trace(x)
    if trace is None:
        return None
    return Readouts(trace, trace.predictions[:, -1])


@runtime_checkable
class ExposesNeuronCounts(Protocol):
    """A spiking model that reports the spikes of every neuron, per population in order,
    shape (batch, *out_shape), for the firing histograms (a class attribute
    ``count_label`` may say what the counts are)."""

    def neuron_spike_counts(self, x: torch.Tensor) -> list[torch.Tensor]: ...


@dataclass(frozen=True, eq=False)
class LayerProbe:
    """Per population: the SNN output (ANN units when ``scaled``) and spike counts, each
    (batch, neurons); ``count_label`` says what the counts are."""

    outputs: list[torch.Tensor] | None
    scaled: bool
    counts: list[torch.Tensor] | None
    count_label: str


def _flat(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().double().flatten(1) for t in tensors]


def probe_layers(model: SpikingModel, x: torch.Tensor) -> LayerProbe | None:
    """Per-neuron outputs and counts of ``model`` on ``x`` (see :class:`LayerProbe`); a
    model without layer outputs is probed through its counts (``scaled`` False)."""
    label = getattr(type(model), "count_label", DEFAULT_COUNT_LABEL)
    counts = (_flat(model.neuron_spike_counts(x))
              if isinstance(model, ExposesNeuronCounts) else None)
    if isinstance(model, ExposesLayerOutputs):
        return LayerProbe(_flat(model.layer_outputs(x)), True, counts, label)
    if counts is not None:
        return LayerProbe(counts, False, counts, label)
    return None
