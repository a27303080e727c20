"""The converted ssnn model: simulation of one batch and its result."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from spikecast.checks import require_unit_interval
from spikecast.choice import Choice
from spikecast.energy.base import network_counts
from spikecast.energy.circuit import CircuitEnergyModel
from spikecast.energy.presets import get_preset
from spikecast.ir.graph import Network
from spikecast.measure.counts import SpikeCounter
from spikecast.schemes.base import Calibration, OutputTrace, SpikingModel, Summary
from spikecast.schemes.ssnn.network import (
    CircuitNetwork,
)
from spikecast.schemes.ssnn.sim_clock import simulate_clock
from spikecast.schemes.ssnn.sim_event import EventResult, checkpoint_times, simulate_events

if TYPE_CHECKING:
    from spikecast.schemes.ssnn.recipe import SSNNRecipe


def pwm_pulse_count(
    duty: torch.Tensor, phase: torch.Tensor, period: float, window: float
) -> torch.Tensor:
    """Number of PWM on-intervals [phase + k P, phase + k P + duty P) overlapping [0, window)."""
    on = duty * period
    first = torch.floor(-(phase + on) / period) + 1
    last = torch.ceil((window - phase) / period) - 1
    return torch.where(on > 0, last - first + 1, torch.zeros_like(on))


class Simulator(Choice):
    """``event``: exact continuous-time (numba); ``clock``: batched torch with step dt."""

    EVENT = "event"
    CLOCK = "clock"


@dataclass(frozen=True)
class SSNNDetails:
    """The circuit's figures: static power and energy per classification of the preset
    (``energy_preset``, over the window), activity energy of the spikes, samples whose
    output layer stayed silent, the calibrated currents and the maximum firing rate."""

    power_W: float
    energy_per_classification_J: float
    activity_energy_J: float
    silent_samples: int
    i_unit_A: tuple[float, ...]
    max_rate_Hz: float
    energy_preset: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"i_unit_A": list(self.i_unit_A)}


class SSNNModel(SpikingModel):
    """A converted network as an SSNN circuit; ``simulate`` runs it."""

    scheme: ClassVar[str] = "ssnn"
    recipe: SSNNRecipe

    def __init__(self, recipe: SSNNRecipe, ann: Network, calibration: Calibration,
                 circuit: CircuitNetwork) -> None:
        if sum(s.synaptic for s in ann.stages()) != len(circuit.weights):
            raise ValueError("circuit and ANN have different numbers of synaptic layers")
        super().__init__(recipe, ann, calibration)
        self.circuit = circuit
        preset = get_preset(recipe.energy_preset)
        if not isinstance(preset, CircuitEnergyModel):
            raise ValueError(
                f"ssnn: energy preset {recipe.energy_preset!r} is not an analog circuit model"
            )
        self.energy = preset

    def duty(self, x: torch.Tensor) -> torch.Tensor:
        """PWM duty per input, (B, n_inputs)."""
        return self.circuit.params.encoder.duty(x.flatten(1))

    def simulate(self, x: torch.Tensor) -> EventResult:
        """Run the chosen simulator on inputs ``x`` in [0, 1]."""
        require_unit_interval(x)
        if math.prod(x.shape[1:]) != self.circuit.n_inputs:
            raise ValueError(
                f"inputs have {math.prod(x.shape[1:])} values per sample, the circuit "
                f"{self.circuit.n_inputs}"
            )
        duty = self.duty(x)
        phase = self.circuit.params.encoder.phases(self.circuit.n_inputs)
        if self.recipe.simulator is Simulator.CLOCK:
            return simulate_clock(self.circuit, duty, phase, self.recipe.dt,
                                  self.recipe.n_points, self.recipe.device)
        return simulate_events(self.circuit, duty, phase, self.recipe.n_points)

    def neuron_spike_counts(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Spikes of every neuron of every layer within the window, (batch, neurons) each."""
        return list(self.simulate(x).counts)

    def time_points(self) -> tuple[tuple[float, ...], str]:
        times = checkpoint_times(self.circuit.params.window, self.recipe.n_points) * 1e6
        return tuple(times.tolist()), "time (us)"

    def new_tally(self) -> SSNNTally:
        return SSNNTally(self)

    def simulate_batch(  # type: ignore[override]
        self, x: torch.Tensor, tally: SSNNTally
    ) -> OutputTrace:
        """One batch: output counts and membranes at every checkpoint; PWM pulses (zero
        pixels too) and every layer's spikes are counted as synaptic events into the next
        layer."""
        result = self.simulate(x)
        tally.add(x, result)
        counts, v = result.checkpoint_counts, result.checkpoint_v
        return OutputTrace(counts, v, counts[:, -1], v[:, -1])


class SSNNTally:
    """Spikes, synaptic events and silent samples of an SSNN evaluation."""

    def __init__(self, model: SSNNModel) -> None:
        self.model = model
        self.counter = SpikeCounter(model.ann)
        self.silent = 0

    def add(self, x: torch.Tensor, result: EventResult) -> None:
        p = self.model.circuit.params
        phase = p.encoder.phases(self.model.circuit.n_inputs)
        pulses = pwm_pulse_count(self.model.duty(x), phase, p.encoder.period, p.window)
        inputs = [pulses, *result.counts[:-1]]
        for stage, arriving, emitted in zip(self.counter.stages, inputs, result.counts,
                                            strict=True):
            self.counter.add_inputs(stage, arriving.double().reshape(len(x), *stage.in_shape))
            self.counter.add_spikes(stage, emitted)
        self.counter.add_samples(len(x))
        self.silent += int((result.counts[-1] == 0).all(1).sum())

    def summary(self, n_samples: int) -> Summary:
        model = self.model
        p = model.circuit.params
        layers = tuple(self.counter.stats())
        counts = network_counts(model.ann)
        spikes = sum(layer.spikes for layer in layers)
        details = SSNNDetails(
            power_W=model.energy.power_W(counts.n_inputs, counts.n_synapses, counts.n_neurons),
            energy_per_classification_J=model.energy.energy_per_classification_J(
                counts.n_inputs, counts.n_synapses, counts.n_neurons, p.window),
            activity_energy_J=model.energy.activity_energy_J(spikes),
            silent_samples=self.silent,
            i_unit_A=tuple(model.circuit.i_unit),
            max_rate_Hz=p.max_rate,
            energy_preset=model.energy.name,
        )
        return Summary(layers=layers, details=details)
