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
from typing import Any, ClassVar

import torch

from spikecast.device import Device
from spikecast.energy.circuit import get_energy_model
from spikecast.ir.graph import Network
from spikecast.ir.normalize import Normalized, model_based
from spikecast.schemes.base import Recipe
from spikecast.schemes.ssnn.circuit import (
    PAPER_MAX_RATE_HZ,
    CircuitParams,
    Phase,
    PWMEncoder,
    parse_enum,
)
from spikecast.schemes.ssnn.model import Simulator, SSNNModel
from spikecast.schemes.ssnn.network import (
    InputMapping,
    apply_input_mapping,
    build_circuit,
    calibrate_i_unit,
    dense_layers,
)


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
    or the clock-driven one (step ``dt``, on ``device``: cpu, cuda or auto; the event-driven
    simulator runs on the CPU); the accuracy curve has ``n_points`` points.
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
        device: Device | str = Device.CPU,
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
        self.device = Device(device).value
        if self.simulator == Simulator.EVENT.value and self.device == Device.CUDA.value:
            raise ValueError(
                "ssnn: device='cuda' needs simulator='clock'; the event-driven simulator runs "
                "on the CPU only (use device='cpu' or 'auto')"
            )
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
