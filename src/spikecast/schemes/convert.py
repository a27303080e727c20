"""The converter's fixed phases: trace (+ fold BN) -> calibrate -> normalize and build."""

from __future__ import annotations

import torch
from torch import nn

from spikecast.checks import require_unit_interval
from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import Network
from spikecast.schemes.base import Recipe, SpikingModel


def convert(
    model: nn.Module | Network,
    recipe: Recipe,
    calib_x: torch.Tensor | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> SpikingModel:
    """Convert ``model`` with ``recipe``: capture (BN folded) -> ``recipe.calibrate`` on
    ``calib_x`` -> ``recipe.build`` (normalization and the spiking model).

    ``model`` is a PyTorch module (traced with ``input_shape``, or the shape of
    ``calib_x``'s samples) or a captured :class:`Network`; it is never mutated. Inputs
    must lie in [0, 1].
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
    return recipe.build(net, recipe.calibrate(net, calib_x))
