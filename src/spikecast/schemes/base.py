"""The recipe protocol every coding scheme implements, and the converter's fixed phases."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from spikecast.checks import require_unit_interval
from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import Network
from spikecast.ir.normalize import Normalized
from spikecast.measure.result import SchemeResult


class SpikingModel(ABC):
    """A converted network ready to simulate; ``evaluate`` measures it on labelled data."""

    scheme: ClassVar[str]

    @abstractmethod
    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256, progress: bool = False
    ) -> SchemeResult:
        """Simulate every sample of ``x`` and compare the readout with ``y``."""


class Recipe(ABC):
    """A coding scheme: how to calibrate and normalize an ANN and what replaces its neurons."""

    name: ClassVar[str]

    @abstractmethod
    def normalize(self, net: Network, calib_x: torch.Tensor | None) -> Normalized:
        """Calibrate on ``calib_x`` (if the scheme uses data) and rescale the weights."""

    @abstractmethod
    def replace(self, normalized: Normalized, ann: Network) -> SpikingModel:
        """Build the spiking model from the normalized network (``ann`` is the original)."""

    def params(self) -> dict[str, Any]:
        """The recipe's parameters, for results files."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def convert(
    model: nn.Module | Network,
    recipe: Recipe,
    calib_x: torch.Tensor | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> SpikingModel:
    """Convert ``model`` with ``recipe``: trace -> fold BN -> calibrate -> normalize -> replace.

    ``model`` is either a PyTorch module (traced with ``input_shape``, or the shape of
    ``calib_x``'s samples) or an already captured :class:`Network`. The model is not mutated.
    Inputs must lie in [0, 1].
    """
    if calib_x is not None:
        require_unit_interval(calib_x, "calibration inputs")
    if isinstance(model, Network):
        net = model
    else:
        if input_shape is None:
            if calib_x is None:
                raise ValueError("convert needs input_shape or calib_x to trace the model")
            input_shape = tuple(calib_x.shape[1:])
        net = capture(model, input_shape)
    normalized = recipe.normalize(net, calib_x)
    return recipe.replace(normalized, net)
