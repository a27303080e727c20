"""Rate-coded conversion (SNN Toolbox baseline, Rueckauer et al. 2017).

The ANN's ReLUs become non-leaky IF neurons with reset by subtraction, weights are
normalized so a neuron's activation maps to a firing rate below one spike per step
(theta r_l ~ a_l / lambda_l), and the class is the output neuron that spiked most.
Membranes start at ``v_init`` theta, by default theta / 2 (Bu et al., ICLR 2022): T steps
then round the rate to the nearest level instead of flooring it, which on validation data
of mnist-cnn, mnist-fc, a digits MLP and a CNN on inverted MNIST was as good or better at
T = 2..16 (benchmarks/bench_finetune.py); ``v_init=0`` is the toolbox's v(0) = 0.
Simulation: :mod:`spikecast.schemes.rate.sim`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from spikecast.checks import require_seed
from spikecast.choice import Choice
from spikecast.device import Device
from spikecast.ir.graph import Network
from spikecast.ir.normalize import apply_scales, data_based, model_based
from spikecast.measure.readout import Readout
from spikecast.schemes.base import Calibration, Recipe, require_positive
from spikecast.schemes.rate.model import RateModel
from spikecast.schemes.rate.neuron import IFParams, Reset
from spikecast.schemes.rate.sim import (
    MAX_STEPS,
    InputCoding,
)


class Normalization(Choice):
    """Weight normalization: data-based percentile, model-based bound, or none."""

    DATA = "data"
    MODEL = "model"
    NONE = "none"


@dataclass(frozen=True)
class RateCalibration(Calibration):
    """The normalization scale lambda_l of every layer's output (1.0: unscaled)."""

    scales: tuple[float, ...]

    def __post_init__(self) -> None:
        require_positive(self.scales, "rate calibration: scales")


@dataclass(frozen=True)
class RateRecipe(Recipe):
    """Rate coding with IF neurons over ``steps`` clock steps.

    ``percentile`` is the data-based normalization percentile (100 = max-norm);
    ``threshold`` theta is the IF threshold (spikes carry charge theta); ``v_init`` the
    initial membrane as a fraction of theta (files written before it existed meant 0);
    ``seed`` seeds Poisson input; ``readout`` how the class is read
    (:mod:`spikecast.measure.readout`); ``device`` is where simulation and calibration run
    (cpu, cuda, auto). Enum fields accept their string values.
    """

    name: ClassVar[str] = "rate"
    calibration_type: ClassVar[type[Calibration]] = RateCalibration
    unrecorded_params: ClassVar[dict[str, Any]] = {"v_init": 0.0}

    steps: int = 64
    normalization: Normalization = Normalization.DATA
    percentile: float = 99.9
    reset: Reset = Reset.SUBTRACT
    input_coding: InputCoding = InputCoding.CONSTANT
    seed: int = 0
    threshold: float = 1.0
    v_init: float = 0.5
    readout: Readout = Readout.COUNT_MEMBRANE
    device: Device = Device.CPU

    def __post_init__(self) -> None:
        if (
            isinstance(self.steps, bool)
            or not isinstance(self.steps, int)
            or not 1 <= self.steps <= MAX_STEPS
        ):
            raise ValueError(
                f"rate recipe: steps must be an integer in [1, {MAX_STEPS}], got {self.steps!r}"
            )
        if not 0 < float(self.percentile) <= 100:
            raise ValueError(f"rate recipe: percentile must be in (0, 100], got {self.percentile}")
        require_seed(self.seed, "rate recipe: seed")
        neuron = IFParams(self.threshold, self.reset, self.v_init)
        object.__setattr__(self, "normalization", Normalization(self.normalization))
        object.__setattr__(self, "input_coding", InputCoding(self.input_coding))
        object.__setattr__(self, "device", Device(self.device))
        object.__setattr__(self, "percentile", float(self.percentile))
        object.__setattr__(self, "readout", Readout(self.readout))
        object.__setattr__(self, "reset", neuron.reset)
        object.__setattr__(self, "threshold", neuron.threshold)
        object.__setattr__(self, "v_init", neuron.v_init)

    @property
    def neuron(self) -> IFParams:
        return IFParams(self.threshold, self.reset, self.v_init)

    def calibrate(self, net: Network, calib_x: torch.Tensor | None) -> RateCalibration:
        """lambda_l from ``calib_x`` (data), from the weights (model), or 1 (none)."""
        if self.normalization is Normalization.DATA:
            if calib_x is None:
                raise ValueError(
                    "rate recipe: normalization='data' needs calibration inputs (calib_x); "
                    "pass them or use normalization='model' or 'none'"
                )
            return RateCalibration(
                data_based(net, calib_x, self.percentile, device=self.device).scales)
        if self.normalization is Normalization.MODEL:
            return RateCalibration(model_based(net).scales)
        return RateCalibration(tuple(1.0 for _ in net.layers))

    def build(self, net: Network, calibration: Calibration) -> RateModel:
        if not isinstance(calibration, RateCalibration):
            raise ValueError(f"rate recipe: expected a RateCalibration, got {calibration!r}")
        return RateModel(self, net, calibration, apply_scales(net, calibration.scales))

    def legacy_calibration(
        self, net: Network, scales: tuple[float, ...], params: dict[str, Any]
    ) -> RateCalibration:
        return RateCalibration(scales)
