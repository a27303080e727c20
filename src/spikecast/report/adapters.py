"""What the report probes beyond a :class:`~spikecast.measure.result.SchemeResult`: every
population's per-neuron spike counts and, where the scheme defines them, its outputs in ANN
units (:meth:`~spikecast.schemes.base.SpikingModel.neuron_spike_counts` and
:meth:`~spikecast.schemes.base.SpikingModel.layer_outputs`), on a subset of samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikecast.schemes.base import SpikingModel


@dataclass(frozen=True, eq=False)
class LayerProbe:
    """Per population: the SNN output (ANN units when ``scaled``, else the counts) and the
    spike counts, each (batch, neurons); ``count_label`` says what the counts are."""

    outputs: list[torch.Tensor]
    scaled: bool
    counts: list[torch.Tensor]
    count_label: str


def _flat(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().double().flatten(1) for t in tensors]


def probe_layers(model: SpikingModel, x: torch.Tensor) -> LayerProbe:
    """Per-neuron outputs and counts of ``model`` on ``x`` (see :class:`LayerProbe`)."""
    counts = _flat(model.neuron_spike_counts(x))
    outputs = model.layer_outputs(x)
    if outputs is None:
        return LayerProbe(counts, False, counts, model.count_label)
    return LayerProbe(_flat(outputs), True, counts, model.count_label)
