"""The converted ssnn model: simulation of one batch and its result."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from rich.progress import track

from spikecast.checks import require_finite
from spikecast.energy.circuit import CircuitEnergyModel, get_energy_model, network_counts
from spikecast.ir.graph import Network
from spikecast.measure.counts import SpikeCounter, ann_macs
from spikecast.measure.latency import PredictionTrace
from spikecast.measure.result import Curve, SchemeResult, accuracy
from spikecast.schemes.base import SpikingModel
from spikecast.schemes.ssnn.network import (
    CircuitNetwork,
)
from spikecast.schemes.ssnn.readout import silent_samples, winner_take_all
from spikecast.schemes.ssnn.sim_clock import simulate_clock
from spikecast.schemes.ssnn.sim_event import EventResult, checkpoint_times, simulate_events

if TYPE_CHECKING:
    pass


def pwm_pulse_count(
    duty: torch.Tensor, phase: torch.Tensor, period: float, window: float
) -> torch.Tensor:
    """Number of PWM on-intervals [phase + k P, phase + k P + duty P) overlapping [0, window)."""
    on = duty * period
    first = torch.floor(-(phase + on) / period) + 1
    last = torch.ceil((window - phase) / period) - 1
    return torch.where(on > 0, last - first + 1, torch.zeros_like(on))


class Simulator(str, Enum):
    """``event``: exact continuous-time (numba); ``clock``: batched torch with step dt."""

    EVENT = "event"
    CLOCK = "clock"


@dataclass(frozen=True)
class Readout:
    """Predicted class per sample at every checkpoint (B, K) and the silent-output flags."""

    predictions: torch.Tensor
    silent: torch.Tensor


class SSNNModel(SpikingModel):
    """A converted network as an SSNN circuit; ``simulate`` runs it, ``evaluate`` scores it."""

    scheme: ClassVar[str] = "ssnn"

    def __init__(self, circuit: CircuitNetwork, ann: Network, params: dict[str, Any]) -> None:
        if sum(s.synaptic for s in ann.stages()) != len(circuit.weights):
            raise ValueError("circuit and ANN have different numbers of synaptic layers")
        self.circuit = circuit
        self.ann = ann
        self.params = params
        self.energy: CircuitEnergyModel = get_energy_model(params["energy_preset"])

    def duty(self, x: torch.Tensor) -> torch.Tensor:
        """PWM duty per input, (B, n_inputs)."""
        return self.circuit.params.encoder.duty(x.flatten(1))

    def simulate(self, x: torch.Tensor) -> EventResult:
        """Run the chosen simulator on inputs ``x`` in [0, 1]."""
        require_finite(x)
        if math.prod(x.shape[1:]) != self.circuit.n_inputs:
            raise ValueError(
                f"inputs have {math.prod(x.shape[1:])} values per sample, the circuit "
                f"{self.circuit.n_inputs}"
            )
        duty = self.duty(x)
        phase = self.circuit.params.encoder.phases(self.circuit.n_inputs)
        if self.params["simulator"] == Simulator.CLOCK.value:
            return simulate_clock(self.circuit, duty, phase, self.params["dt"],
                                  self.params["n_points"], self.params.get("device", "cpu"))
        return simulate_events(self.circuit, duty, phase, self.params["n_points"])

    @staticmethod
    def readout(result: EventResult) -> Readout:
        preds = winner_take_all(result.checkpoint_counts, result.checkpoint_v)
        return Readout(preds, silent_samples(result.checkpoint_counts[:, -1]))

    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256, progress: bool = False
    ) -> SchemeResult:
        """Accuracy at the end of the window and at every checkpoint, spikes, energy."""
        if len(x) != len(y):
            raise ValueError(f"{len(x)} inputs but {len(y)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        counter = SpikeCounter(self.ann)
        stages = counter.stages
        p = self.circuit.params
        phase = p.encoder.phases(self.circuit.n_inputs)
        preds, silent = [], 0
        chunks = range(0, len(x), batch_size)
        for start in track(chunks, description="ssnn") if progress else chunks:
            xb = x[start:start + batch_size]
            result = self.simulate(xb)
            read = self.readout(result)
            preds.append(read.predictions)
            silent += int(read.silent.sum())
            pulses = pwm_pulse_count(self.duty(xb), phase, p.encoder.period, p.window)
            inputs = [pulses, *result.counts[:-1]]
            for stage, arriving, emitted in zip(stages, inputs, result.counts, strict=True):
                counter.add_inputs(stage, arriving.double().reshape(len(xb), *stage.in_shape))
                counter.add_spikes(stage, emitted)
            counter.add_samples(len(xb))
        pred = torch.cat(preds)
        curve_acc = [accuracy(pred[:, k], y) for k in range(pred.shape[1])]
        times = (checkpoint_times(p.window, self.params["n_points"]) * 1e6).tolist()
        layers = counter.stats()
        counts = network_counts(self.ann)
        spikes = sum(layer.spikes for layer in layers)
        extra = {
            "power_W": self.energy.power_W(counts.n_inputs, counts.n_synapses, counts.n_neurons),
            "energy_per_classification_J": self.energy.energy_per_classification_J(
                counts.n_inputs, counts.n_synapses, counts.n_neurons, p.window),
            "activity_energy_J": self.energy.activity_energy_J(spikes),
            "silent_samples": silent,
            "i_unit_A": list(self.circuit.i_unit),
            "max_rate_Hz": p.max_rate,
            "energy_preset": self.energy.name,
        }
        return SchemeResult(
            self.scheme, curve_acc[-1], len(x), layers, ann_macs(self.ann),
            Curve("time (us)", times, curve_acc), dict(self.params), extra,
            trace=PredictionTrace(tuple(times), pred, "time (us)"),
        )

    def neuron_spike_counts(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Spikes of every neuron of every layer within the window, (batch, neurons) each."""
        return list(self.simulate(x).counts)
