"""Sigma-delta conversion (Yousefzadeh et al., paper 004): hysteresis-quantized neurons that
communicate their quantized ReLU output with signed spikes of value +-theta, fed by a
K-level intensity-to-delay input (the paper's 1-bit input for K = 1), simulated exactly
event by event.

No weight normalization: the ANN's weights and biases are used as they are and the scale
is set by the quantization level theta_l of each population (the calibration record).
Networks may be DAGs (Add, Concat): see :mod:`spikecast.schemes.sigma_delta.program` for
how layers between populations are composed.

Counting conventions (per frame): neurons = the populations (stages followed by a ReLU, and
the output; max-pool units are not neurons, their +-theta messages are
``details.pool_messages``); spikes per neuron = (positive + negative spikes of those
neurons) / neurons; synaptic updates = every spike, input spike and pool message x its
composed fan-out, reported per population as the updates delivered into it; ANN MACs are exact
(:func:`spikecast.measure.counts.ann_macs`); the paper reproduction adds the paper's
footnote formula, which leaves out the input channels of each convolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from spikecast.device import Device
from spikecast.ir.graph import Network
from spikecast.measure.readout import Readout
from spikecast.schemes.base import Calibration, Recipe, require_positive
from spikecast.schemes.sigma_delta.auto_theta import search_thresholds
from spikecast.schemes.sigma_delta.encoding import InputCoding
from spikecast.schemes.sigma_delta.model import SigmaDeltaModel, SimMode
from spikecast.schemes.sigma_delta.neuron import FiringRule, check_hysteresis, check_theta
from spikecast.schemes.sigma_delta.program import population_stages
from spikecast.schemes.sigma_delta.sim_event import check_delay
from spikecast.schemes.sigma_delta.thresholds import (
    AUTO,
    Calibrated,
    ThresholdSpec,
    describe,
    parse_spec,
    resolve_thresholds,
)

DEFAULT_THETA = Calibrated(fraction=0.05)
DEFAULT_HYSTERESIS = 0.0
DEFAULT_INPUT_LEVELS = 16
NEAREST_LEVEL = 0.5  # input rounding point for input_levels > 1: each pixel's nearest level
PAPER_SETTINGS: dict[str, Any] = {
    "theta": 1.0, "hysteresis": 1.0, "input_levels": 1, "input_threshold": 0.2,
}


@dataclass(frozen=True)
class SigmaDeltaCalibration(Calibration):
    """The quantization level theta of every population, in network order."""

    thetas: tuple[float, ...]

    def __post_init__(self) -> None:
        require_positive(self.thetas, "sigma-delta calibration: thetas")


@dataclass(frozen=True)
class SigmaDeltaRecipe(Recipe):
    """Sigma-delta scheme. ``theta``: a shared quantization level, one per population,
    :class:`Calibrated` (default: 5 % of each population's 99.9th activation percentile on
    the calibration data) or ``"auto"`` (searched within ``budget`` accuracy points, see
    :mod:`~spikecast.schemes.sigma_delta.auto_theta`); ``rule``: 'exact' or 'paper';
    ``mode``: 'event' or 'timeslice'; ``hysteresis``: the band h in [0, 1] (1: the paper,
    0: nearest level, see :mod:`~spikecast.schemes.sigma_delta.neuron`);
    ``input_levels`` K and ``input_threshold`` c: a pixel p sends #{k : p > (k - 1 + c) / K}
    spikes of value 1/K at 1 - p (c defaults to 0.2 for K = 1, the paper's 1-bit input, and
    to 1/2, the nearest level, otherwise); ``delay``: synaptic delay (TU); ``time_points``:
    how many points of the accuracy-vs-time curve; ``readout``: how the class is read from
    the output (:mod:`spikecast.measure.readout`); ``device``: where the timeslice simulator
    runs (the event kernel runs on the CPU). :meth:`paper` gives the paper's settings."""

    name: ClassVar[str] = "sigma-delta"
    calibration_type: ClassVar[type[Calibration]] = SigmaDeltaCalibration

    theta: ThresholdSpec = DEFAULT_THETA
    rule: FiringRule = FiringRule.EXACT
    mode: SimMode = SimMode.EVENT
    input_threshold: float | None = None
    delay: float = 0.0
    time_points: int = 81
    device: Device = Device.CPU
    readout: Readout = Readout.COUNT_MEMBRANE
    hysteresis: float = DEFAULT_HYSTERESIS
    input_levels: int = DEFAULT_INPUT_LEVELS
    budget: float = 0.5

    @classmethod
    def paper(cls, **overrides: Any) -> SigmaDeltaRecipe:
        """Paper 004's settings (theta 1, hysteresis 1, 1-bit input cut at 0.2)."""
        return cls(**(PAPER_SETTINGS | overrides))

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", FiringRule(self.rule))
        object.__setattr__(self, "readout", Readout(self.readout))
        object.__setattr__(self, "hysteresis", check_hysteresis(self.hysteresis))
        if self.input_threshold is None:
            cut = PAPER_SETTINGS["input_threshold"] if self.input_levels == 1 else NEAREST_LEVEL
            object.__setattr__(self, "input_threshold", cut)
        if not 0.0 <= self.input_threshold < 1.0:
            raise ValueError(f"input_threshold must be in [0, 1), got {self.input_threshold}")
        object.__setattr__(self, "input_levels", self.coding.levels)
        try:
            object.__setattr__(self, "mode", SimMode(self.mode))
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in SimMode)
            raise ValueError(f"unknown mode {self.mode!r}; allowed: {allowed}") from None
        object.__setattr__(self, "device", Device(self.device))
        if self.mode is SimMode.EVENT and self.device is Device.CUDA:
            raise ValueError(
                "sigma-delta: device='cuda' needs mode='timeslice'; the event-driven kernel "
                "runs on the CPU only (use device='cpu' or 'auto')"
            )
        object.__setattr__(self, "theta", parse_spec(self.theta))
        if isinstance(self.theta, (int, float)):
            object.__setattr__(self, "theta", check_theta(self.theta))
        elif not isinstance(self.theta, (Calibrated, str)):
            thetas = tuple(check_theta(t, f"theta[{i}]") for i, t in enumerate(self.theta))
            object.__setattr__(self, "theta", thetas)
        if not (0.0 <= self.budget <= 100.0):
            raise ValueError(f"budget must be in [0, 100] accuracy points, got {self.budget}")
        check_delay(self.delay)
        if self.time_points < 2:
            raise ValueError(f"time_points must be >= 2, got {self.time_points}")

    @property
    def coding(self) -> InputCoding:
        """The input coding: ``input_levels`` levels, rounding point ``input_threshold``."""
        return InputCoding(self.input_levels, self.input_threshold)

    def params(self) -> dict[str, Any]:
        return super().params() | {"theta": describe(self.theta)}

    def calibrate(self, net: Network, calib_x: torch.Tensor | None) -> SigmaDeltaCalibration:
        """theta of every population: the shared or per-population value, calibrated on
        ``calib_x`` (:func:`resolve_thresholds`), or searched within ``budget`` (``"auto"``,
        :func:`search_thresholds`). The weights are kept as they are."""
        if self.theta == AUTO:
            thetas = search_thresholds(net, calib_x, self).thetas
        else:
            thetas = resolve_thresholds(net, self.theta, calib_x, self.input_threshold,
                                        self.input_levels)
        return SigmaDeltaCalibration(tuple(float(t) for t in thetas))

    def build(self, net: Network, calibration: Calibration) -> SigmaDeltaModel:
        if not isinstance(calibration, SigmaDeltaCalibration):
            raise ValueError(
                f"sigma-delta recipe: expected a SigmaDeltaCalibration, got {calibration!r}"
            )
        thetas = tuple(check_theta(t, f"theta[{i}]") for i, t in enumerate(calibration.thetas))
        return SigmaDeltaModel(self, net, calibration, thetas)

    def legacy_calibration(
        self, net: Network, scales: tuple[float, ...], params: dict[str, Any]
    ) -> SigmaDeltaCalibration:
        """Version-2 files stored theta as the scale of each population's output."""
        return SigmaDeltaCalibration(tuple(scales[s.index] for s in population_stages(net)))
