"""Analog circuit energy: static power x window (the SSNN circuit of Nomura et al.).

``ssnn-180nm`` is the analog circuit of paper 000: static power of always-on current-mode
synapses, neurons and TBSC generators times the observation window, plus an activity view
(spikes x energy per spike). A circuit runs only the SNN of the schemes it implements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from spikecast.energy.base import NetworkCounts

if TYPE_CHECKING:
    from spikecast.measure.opcounts import Workload


@dataclass(frozen=True)
class CircuitEnergyModel:
    """Static-power model of an analog SNN circuit.

    P = n_inputs P_gen + n_synapses P_syn + n_neurons P_neuron;
    E_classification = P x window;  E_activity = spikes x E_spike.

    The ``ssnn-180nm`` preset takes Table II of the SSNN paper (0.18 um CMOS, 13-30-3):
    average synapse power 0.294 uW, neuron power 12.12 uW, 13 TBSC generators at 0.88 mW
    in all, 0.94 pJ per spike (also Table III), and the 5 us window of Sec. IV-B; Table IV
    estimates MNIST 784-500-10 from these at 0.88 uJ per classification.
    """

    name: str
    synapse_power_W: float
    neuron_power_W: float
    generator_power_W: float
    energy_per_spike_J: float
    window_s: float
    source: str
    schemes: tuple[str, ...] = ("ssnn",)

    def __post_init__(self) -> None:
        for key in ("synapse_power_W", "neuron_power_W", "generator_power_W",
                    "energy_per_spike_J"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"{self.name}: {key} must be >= 0, got {getattr(self, key)}")
        if not self.window_s > 0:
            raise ValueError(f"{self.name}: window_s must be > 0, got {self.window_s}")

    def power_W(self, n_inputs: int, n_synapses: int, n_neurons: int) -> float:
        """Total static power of the circuit (W)."""
        for key, value in (("n_inputs", n_inputs), ("n_synapses", n_synapses),
                           ("n_neurons", n_neurons)):
            if value < 0:
                raise ValueError(f"{key} must be >= 0, got {value}")
        return (
            n_inputs * self.generator_power_W
            + n_synapses * self.synapse_power_W
            + n_neurons * self.neuron_power_W
        )

    def energy_per_classification_J(
        self, n_inputs: int, n_synapses: int, n_neurons: int, window_s: float | None = None
    ) -> float:
        """Static power x observation window (J); ``window_s`` overrides the preset's."""
        window = self.window_s if window_s is None else window_s
        if not window > 0:
            raise ValueError(f"window_s must be > 0, got {window}")
        return self.power_W(n_inputs, n_synapses, n_neurons) * window

    def activity_energy_J(self, spikes: float) -> float:
        """Energy of the spikes themselves: spikes x energy per spike (J)."""
        if spikes < 0:
            raise ValueError(f"spikes must be >= 0, got {spikes}")
        return spikes * self.energy_per_spike_J

    def ann_energy_J(self, ann: Workload, counts: NetworkCounts) -> float | None:
        """None: the circuit runs no ANN."""
        return None

    def snn_energy_J(
        self, snn: Workload, counts: NetworkCounts, scheme: str | None = None
    ) -> float | None:
        """P(n_inputs, n_synapses, n_neurons) x the preset's window; None for a ``scheme``
        the circuit does not implement."""
        if scheme is not None and scheme not in self.schemes:
            return None
        return self.energy_per_classification_J(counts.n_inputs, counts.n_synapses,
                                                counts.n_neurons)


SSNN_180NM = CircuitEnergyModel(
    name="ssnn-180nm",
    synapse_power_W=0.294e-6,
    neuron_power_W=12.12e-6,
    generator_power_W=0.88e-3 / 13,
    energy_per_spike_J=0.94e-12,
    window_s=5e-6,
    source="Nomura et al., An Energy Efficient Stochastic+Spiking Neural Network, "
    "Tables II-IV (0.18 um CMOS)",
)
