"""The one energy protocol every preset implements, and the counts it prices.

A preset prices one inference from NeuroBench-style workloads (:mod:`spikecast.measure.opcounts`)
and from the network's counts (:func:`network_counts`); ``None`` where its hardware cannot
run that model (an analog circuit has no ANN; a multiplier-free chip has no MACs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from spikecast.ir.graph import Network
from spikecast.measure.counts import neuron_count, synapse_count

if TYPE_CHECKING:
    from spikecast.measure.opcounts import Workload


@dataclass(frozen=True)
class NetworkCounts:
    """What a circuit instantiates: input generators, synapses and spiking neurons."""

    n_inputs: int
    n_synapses: int
    n_neurons: int


def network_counts(net: Network) -> NetworkCounts:
    """Counts of ``net``: inputs = numel of one sample, synapses = connections
    (:func:`spikecast.measure.counts.synapse_count`), neurons = hidden + output neurons."""
    return NetworkCounts(math.prod(net.input_shape), synapse_count(net), neuron_count(net))


class EnergyPreset(Protocol):
    """A named, cited hardware energy model."""

    name: str
    source: str

    def ann_energy_J(self, ann: Workload, counts: NetworkCounts) -> float | None:
        """Energy of one ANN inference, None where the hardware cannot run it."""
        ...

    def snn_energy_J(
        self, snn: Workload, counts: NetworkCounts, scheme: str | None = None
    ) -> float | None:
        """Energy of one SNN inference of ``scheme``, None where undefined."""
        ...
