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
from typing import Any, ClassVar

import torch

from spikecast.device import Device
from spikecast.energy.presets import get_preset
from spikecast.ir.graph import Network
from spikecast.ir.normalize import model_based
from spikecast.measure.readout import Readout
from spikecast.schemes.base import Calibration, Recipe, require_positive
from spikecast.schemes.ssnn.circuit import (
    PAPER_MAX_RATE_HZ,
    CircuitParams,
    Phase,
    PWMEncoder,
    parse_enum,
)
from spikecast.schemes.ssnn.model import Simulator, SSNNModel
from spikecast.schemes.ssnn.network import (
    DenseLayer,
    InputMapping,
    apply_input_mapping,
    build_circuit,
    calibrate_i_unit,
    dense_layers,
)


@dataclass(frozen=True)
class SSNNCalibration(Calibration):
    """The current per unit weight of every synaptic layer (A)."""

    i_unit: tuple[float, ...]

    def __post_init__(self) -> None:
        require_positive(self.i_unit, "ssnn calibration: i_unit")


@dataclass(frozen=True)
class SSNNRecipe(Recipe):
    """Recipe for the SSNN circuit. Times in s, voltages in V, currents in A.

    ``i_unit`` None calibrates one current scale per layer on the calibration data (or the
    model-based bound without data) so the ``calibration_percentile`` of each hidden layer's
    ideal rates is ``rate_target`` x the maximum rate, and ``output_rate_target`` x it for
    the output layer; a float (same for every layer) or a per-layer sequence fixes it.
    The output target is lower by default because an output neuron in reset discards whole
    incoming pulses, which makes high output counts noisy; the default ``readout`` decides on
    counts first and membrane potentials second (:mod:`spikecast.measure.readout`).
    ``t_ref`` None = 1 / 5.3 MHz - spike_width. Biases (and the ``fold`` input offset)
    become constant current sources. ``simulator`` picks the exact event-driven simulator
    or the clock-driven one (step ``dt``, on ``device``: cpu, cuda or auto; the event-driven
    simulator runs on the CPU); the accuracy curve has ``n_points`` points.
    Power and energy come from the ``energy_preset`` (:mod:`spikecast.energy.circuit`); the
    activity energy counts hidden and output spikes.
    """

    name: ClassVar[str] = "ssnn"
    calibration_type: ClassVar[type[Calibration]] = SSNNCalibration

    c_mem: float = 1e-12
    v_th: float = 0.9
    i_unit: float | tuple[float, ...] | None = None
    rate_target: float = 0.5
    output_rate_target: float = 0.3
    calibration_percentile: float = 99.0
    v_init: float = 0.0
    spike_width: float = 50e-9
    t_ref: float | None = None
    window: float = 5e-6
    mismatch_pct: float = 0.0
    mismatch_seed: int = 0
    v_min: float = 0.2
    v_max: float = 1.0
    v_full: float = 1.0
    period: float = 400e-9
    phase: Phase = Phase.ALIGNED
    phase_seed: int = 0
    input_mapping: InputMapping = InputMapping.FOLD
    simulator: Simulator = Simulator.EVENT
    dt: float = 1e-9
    n_points: int = 50
    energy_preset: str = "ssnn-180nm"
    readout: Readout = Readout.COUNT_MEMBRANE
    device: Device = Device.CPU

    def __post_init__(self) -> None:
        def put(key: str, value: Any) -> None:
            object.__setattr__(self, key, value)

        put("i_unit", None if self.i_unit is None else _as_units(self.i_unit))
        if self.t_ref is None:
            put("t_ref", 1.0 / PAPER_MAX_RATE_HZ - self.spike_width)
        put("phase", parse_enum(Phase, self.phase, "phase"))
        put("input_mapping", parse_enum(InputMapping, self.input_mapping, "input_mapping"))
        put("simulator", parse_enum(Simulator, self.simulator, "simulator"))
        put("readout", Readout(self.readout))
        put("device", Device(self.device))
        if self.simulator is Simulator.EVENT and self.device is Device.CUDA:
            raise ValueError(
                "ssnn: device='cuda' needs simulator='clock'; the event-driven simulator runs "
                "on the CPU only (use device='cpu' or 'auto')"
            )
        for key in ("rate_target", "output_rate_target"):
            target = getattr(self, key)
            if not 0 < target <= 1:
                raise ValueError(f"{key} must be in (0, 1] (fraction of max rate), got {target}")
        if not 0 < self.calibration_percentile <= 100:
            raise ValueError(
                f"calibration_percentile must be in (0, 100], got {self.calibration_percentile}"
            )
        if self.n_points < 1:
            raise ValueError(f"n_points must be >= 1, got {self.n_points}")
        get_preset(self.energy_preset)
        self.circuit_params()

    def params(self) -> dict[str, Any]:
        out = super().params()
        out["i_unit"] = None if self.i_unit is None else list(self.i_unit)
        return out

    def circuit_params(self) -> CircuitParams:
        """The physical parameters (validated)."""
        encoder = PWMEncoder(self.v_min, self.v_max, self.v_full, self.period,
                             Phase(self.phase), self.phase_seed)
        return CircuitParams(self.c_mem, self.v_th, None, self.spike_width, self.t_ref,
                             self.window, self.mismatch_pct, self.mismatch_seed, encoder,
                             self.v_init)

    def _layers(self, net: Network, params: CircuitParams) -> list[DenseLayer]:
        """Model-based normalized dense layers with the input mapping applied."""
        normalized = model_based(net, input_max=1.0)
        return apply_input_mapping(
            dense_layers(normalized.network), InputMapping(self.input_mapping),
            params.encoder.offset, params.encoder.gain,
        )

    def calibrate(self, net: Network, calib_x: torch.Tensor | None) -> SSNNCalibration:
        """The fixed ``i_unit``, else currents calibrated on the PWM duty of ``calib_x``
        (the model-based bound without data); see :func:`calibrate_i_unit`."""
        params = self.circuit_params()
        layers = self._layers(net, params)
        if self.i_unit is not None:
            units = self.i_unit if len(self.i_unit) > 1 else self.i_unit * len(layers)
            return SSNNCalibration(tuple(units))
        duty = None if calib_x is None else params.encoder.duty(calib_x.flatten(1))
        return SSNNCalibration(tuple(calibrate_i_unit(
            layers, params, self.rate_target, duty, self.calibration_percentile,
            self.output_rate_target,
        )))

    def build(self, net: Network, calibration: Calibration) -> SSNNModel:
        if not isinstance(calibration, SSNNCalibration):
            raise ValueError(f"ssnn recipe: expected an SSNNCalibration, got {calibration!r}")
        params = self.circuit_params()
        circuit = build_circuit(self._layers(net, params), params, calibration.i_unit)
        return SSNNModel(self, net, calibration, circuit)

    def legacy_calibration(
        self, net: Network, scales: tuple[float, ...], params: dict[str, Any]
    ) -> SSNNCalibration:
        """Version-2 files stored the calibrated currents as the ``i_unit`` parameter."""
        if params.get("i_unit") is None:
            raise ValueError("ssnn file without calibrated currents (i_unit)")
        return SSNNCalibration(_as_units(params["i_unit"]))


def _as_units(i_unit: float | list[float] | tuple[float, ...]) -> tuple[float, ...]:
    units = (float(i_unit),) if isinstance(i_unit, (int, float)) else tuple(map(float, i_unit))
    if not units or not all(u > 0 and math.isfinite(u) for u in units):
        raise ValueError(f"i_unit must be positive currents in A, got {i_unit!r}")
    return units
