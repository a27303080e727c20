"""The stochastic+spiking (SSNN) scheme of Nomura et al. (paper 000), registered as ``ssnn``.

Conversion: model-based normalization (Diehl 2015, the paper's Fig. 2), inputs as PWM
(TBSC) pulse trains, current-mode synapses into non-leaky IF neurons with reset to 0 and a
floor at 0, winner-take-all on output spike counts over a 5 us window. Input mapping: by
default (``input_mapping="fold"``) the ANN is assumed trained on x in [0, 1] and the
encoder's duty = 0.2 + 0.8 x is undone in layer 1; ``"voltage"`` assumes the ANN was
trained on the duty itself (the paper's Table I). See :mod:`spikecast.schemes.ssnn.circuit` for
every physical parameter and :mod:`spikecast.schemes.ssnn.network` for the current calibration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

import torch
from rich.progress import track

from spikecast.checks import require_finite
from spikecast.energy.circuit import CircuitEnergyModel, get_energy_model, network_counts
from spikecast.ir.graph import Network
from spikecast.ir.normalize import Normalized, model_based
from spikecast.measure.counts import SpikeCounter, ann_macs
from spikecast.measure.latency import PredictionTrace
from spikecast.measure.result import Curve, SchemeResult, accuracy
from spikecast.schemes.base import Recipe, SpikingModel
from spikecast.schemes.ssnn.circuit import (
    PAPER_MAX_RATE_HZ,
    CircuitParams,
    Phase,
    PWMEncoder,
    parse_enum,
)
from spikecast.schemes.ssnn.network import (
    CircuitNetwork,
    InputMapping,
    apply_input_mapping,
    build_circuit,
    calibrate_i_unit,
    dense_layers,
)
from spikecast.schemes.ssnn.readout import silent_samples, winner_take_all
from spikecast.schemes.ssnn.sim_clock import simulate_clock
from spikecast.schemes.ssnn.sim_event import EventResult, checkpoint_times, simulate_events


class Simulator(str, Enum):
    """``event``: exact continuous-time (numba); ``clock``: batched torch with step dt."""

    EVENT = "event"
    CLOCK = "clock"


def pwm_pulse_count(
    duty: torch.Tensor, phase: torch.Tensor, period: float, window: float
) -> torch.Tensor:
    """Number of PWM on-intervals [phase + k P, phase + k P + duty P) overlapping [0, window)."""
    on = duty * period
    first = torch.floor(-(phase + on) / period) + 1
    last = torch.ceil((window - phase) / period) - 1
    return torch.where(on > 0, last - first + 1, torch.zeros_like(on))


class SSNNRecipe(Recipe):
    """Recipe for the SSNN circuit. Times in s, voltages in V, currents in A.

    ``i_unit`` None calibrates one current scale per layer on the calibration data (or the
    model-based bound without data) so the ``calibration_percentile`` of each hidden layer's
    ideal rates is ``rate_target`` x the maximum rate, and ``output_rate_target`` x it for
    the output layer; a float (same for every layer) or a per-layer sequence fixes it.
    The output target is lower by default because an output neuron in reset discards whole
    incoming pulses, which makes high output counts noisy; the readout then decides on
    counts first and membrane potentials second (see :mod:`spikecast.schemes.ssnn.readout`).
    ``t_ref`` None = 1 / 5.3 MHz - spike_width. Biases (and the ``fold`` input offset)
    become constant current sources. ``simulator`` picks the exact event-driven simulator
    or the clock-driven one (step ``dt``); the accuracy curve has ``n_points`` points.
    Power and energy come from the ``energy_preset`` (:mod:`spikecast.energy.circuit`); the
    activity energy counts hidden and output spikes.
    """

    name: ClassVar[str] = "ssnn"

    def __init__(
        self,
        *,
        c_mem: float = 1e-12,
        v_th: float = 0.9,
        i_unit: float | list[float] | tuple[float, ...] | None = None,
        rate_target: float = 0.5,
        output_rate_target: float = 0.3,
        calibration_percentile: float = 99.0,
        v_init: float = 0.0,
        spike_width: float = 50e-9,
        t_ref: float | None = None,
        window: float = 5e-6,
        mismatch_pct: float = 0.0,
        mismatch_seed: int = 0,
        v_min: float = 0.2,
        v_max: float = 1.0,
        v_full: float = 1.0,
        period: float = 400e-9,
        phase: Phase | str = Phase.ALIGNED,
        phase_seed: int = 0,
        input_mapping: InputMapping | str = InputMapping.FOLD,
        simulator: Simulator | str = Simulator.EVENT,
        dt: float = 1e-9,
        n_points: int = 50,
        energy_preset: str = "ssnn-180nm",
    ) -> None:
        self.c_mem, self.v_th, self.rate_target = c_mem, v_th, rate_target
        self.calibration_percentile, self.v_init = calibration_percentile, v_init
        self.output_rate_target = output_rate_target
        self.i_unit = None if i_unit is None else _as_units(i_unit)
        self.spike_width, self.window = spike_width, window
        self.t_ref = 1.0 / PAPER_MAX_RATE_HZ - spike_width if t_ref is None else t_ref
        self.mismatch_pct, self.mismatch_seed = mismatch_pct, mismatch_seed
        self.v_min, self.v_max, self.v_full, self.period = v_min, v_max, v_full, period
        self.phase = parse_enum(Phase, phase, "phase").value
        self.phase_seed = phase_seed
        self.input_mapping = parse_enum(InputMapping, input_mapping, "input_mapping").value
        self.simulator = parse_enum(Simulator, simulator, "simulator").value
        self.dt, self.n_points, self.energy_preset = dt, n_points, energy_preset
        for key, target in (("rate_target", rate_target),
                            ("output_rate_target", output_rate_target)):
            if not 0 < target <= 1:
                raise ValueError(f"{key} must be in (0, 1] (fraction of max rate), got {target}")
        if not 0 < calibration_percentile <= 100:
            raise ValueError(
                f"calibration_percentile must be in (0, 100], got {calibration_percentile}"
            )
        if n_points < 1:
            raise ValueError(f"n_points must be >= 1, got {n_points}")
        get_energy_model(energy_preset)
        self.circuit_params()
        self._calib_x: torch.Tensor | None = None
        self._calibrated: tuple[float, ...] | None = None

    def params(self) -> dict[str, Any]:
        """Constructor parameters; after :meth:`replace` ``i_unit`` holds the calibrated
        currents, so ``SSNNRecipe(**params)`` rebuilds the identical circuit without data."""
        out = super().params()
        if self._calibrated is not None:
            out["i_unit"] = list(self._calibrated)
        return out

    def circuit_params(self) -> CircuitParams:
        """The physical parameters (validated)."""
        encoder = PWMEncoder(self.v_min, self.v_max, self.v_full, self.period,
                             Phase(self.phase), self.phase_seed)
        return CircuitParams(self.c_mem, self.v_th, None, self.spike_width, self.t_ref,
                             self.window, self.mismatch_pct, self.mismatch_seed, encoder,
                             self.v_init)

    def normalize(self, net: Network, calib_x: torch.Tensor | None) -> Normalized:
        """Model-based normalization; ``calib_x`` is kept to calibrate the currents."""
        self._calib_x = calib_x
        return model_based(net, input_max=1.0)

    def replace(self, normalized: Normalized, ann: Network) -> SSNNModel:
        params = self.circuit_params()
        mapping = InputMapping(self.input_mapping)
        layers = apply_input_mapping(
            dense_layers(normalized.network), mapping, params.encoder.offset, params.encoder.gain
        )
        if self.i_unit is None:
            calib = None
            if self._calib_x is not None:
                calib = params.encoder.duty(self._calib_x.flatten(1))
            units = calibrate_i_unit(
                layers, params, self.rate_target, calib, self.calibration_percentile,
                self.output_rate_target,
            )
            self._calibrated = units
        else:
            units = self.i_unit if len(self.i_unit) > 1 else self.i_unit * len(layers)
        circuit = build_circuit(layers, params, tuple(units))
        return SSNNModel(circuit, ann, self.params())


def _as_units(i_unit: float | list[float] | tuple[float, ...]) -> tuple[float, ...]:
    units = (float(i_unit),) if isinstance(i_unit, (int, float)) else tuple(map(float, i_unit))
    if not units or not all(u > 0 and math.isfinite(u) for u in units):
        raise ValueError(f"i_unit must be positive currents in A, got {i_unit!r}")
    return units


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
                                  self.params["n_points"])
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
