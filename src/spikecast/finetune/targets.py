"""What fine-tuning for a scheme means: which quantizer replaces each ReLU, at which
calibrated levels, how the input is coded, and which network and recipe parameters come out.

* sigma-delta: theta of every population from the recipe's own ``calibrate``; each ReLU
  becomes a :class:`QuantReLU` at its population's theta (hysteresis rates measured in the
  event-driven simulator of that conversion); the input is the 1-bit image. The result keeps
  the weights and records the per-population thetas it was tuned for.
* rate: lambda_l = theta lambda_l^cal from the recipe's own ``calibrate`` (the normalization
  scale times the IF threshold: the activation at which a neuron fires every step); each
  ReLU becomes a :class:`QCFS` for T = the recipe's steps (an average pool's ReLU keeps its
  input's lambda). The result is the trained network rescaled with lambda_l / theta
  (:func:`spikecast.ir.normalize.apply_scales`; other layers by the recipe's percentile),
  converted with ``normalization='none'`` and ``v_init=0.5``, so T steps of its first IF
  layer emit exactly the QCFS levels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from spikecast.finetune.hysteresis import measure_up_rates
from spikecast.finetune.quantizers import QCFS, Quantizer, QuantReLU
from spikecast.finetune.to_module import NetworkModule, to_module
from spikecast.ir.graph import (
    INPUT,
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Network,
    ReLU,
)
from spikecast.ir.normalize import apply_scales, data_based
from spikecast.schemes.base import Recipe
from spikecast.schemes.rate import RateRecipe
from spikecast.schemes.sigma_delta import SigmaDeltaRecipe
from spikecast.schemes.sigma_delta.encoding import binarize
from spikecast.schemes.sigma_delta.program import population_stages

ALLOWED = {"sigma-delta": (Quantizer.HYSTERESIS, Quantizer.FLOOR, Quantizer.RELU),
           "rate": (Quantizer.QCFS,)}
UP_FRAMES = 300  # training frames the hysteresis rates are measured on


@dataclass
class Prepared:
    """A trainable module with its quantizers, the input coder and the calibrated levels."""

    module: NetworkModule
    quantizers: list[torch.nn.Module]
    code: Callable[[torch.Tensor], torch.Tensor]
    levels: dict[str, Any] = field(default_factory=dict)


def check_quantizer(scheme: str, quantizer: Quantizer | str | None) -> Quantizer:
    """The quantizer to use for ``scheme`` (None: its first allowed one)."""
    if scheme not in ALLOWED:
        raise ValueError(f"fine-tuning supports the schemes {', '.join(ALLOWED)}; got {scheme!r}")
    if quantizer is None:
        return ALLOWED[scheme][0]
    q = Quantizer(quantizer)
    if q not in ALLOWED[scheme]:
        names = ", ".join(repr(a.value) for a in ALLOWED[scheme])
        raise ValueError(f"scheme {scheme!r} is fine-tuned with quantizer {names}, not {q.value!r}")
    return q


def prepare(
    recipe: Recipe, net: Network, calib_x: torch.Tensor, quantizer: Quantizer
) -> Prepared:
    """Calibrate ``recipe`` on ``calib_x`` and put its quantizers into a module of ``net``."""
    if isinstance(recipe, SigmaDeltaRecipe):
        return _prepare_sigma_delta(recipe, net, calib_x, quantizer)
    if isinstance(recipe, RateRecipe):
        return _prepare_rate(recipe, net, calib_x)
    raise ValueError(f"fine-tuning supports the schemes {', '.join(ALLOWED)}; got "
                     f"{recipe.name!r}")


def finish(
    recipe: Recipe, prepared: Prepared, calib_x: torch.Tensor
) -> tuple[Network, dict[str, Any], dict[str, Any]]:
    """The tuned network, the recipe parameters to convert it with and the levels (the
    calibrated ones and, for rate, the trained lambdas)."""
    net = prepared.module.to_network()
    if isinstance(recipe, SigmaDeltaRecipe):
        return net, recipe.params() | {"theta": list(prepared.levels["thetas"])}, prepared.levels
    lam = [float(q.scale().detach()) for q in prepared.quantizers]
    params = recipe.params() | {"normalization": "none", "v_init": 0.5}
    return _fold_rate(recipe, net, lam, calib_x), params, prepared.levels | {"lambdas": lam}


def _sites(net: Network) -> list[tuple[int, int]]:
    """(ReLU layer index, index of the layer it reads) for every ReLU."""
    return [(i, src[0]) for i, (layer, src) in enumerate(zip(net.layers, net.sources,
                                                            strict=True))
            if isinstance(layer, ReLU)]


def _prepare_sigma_delta(
    recipe: SigmaDeltaRecipe, net: Network, calib_x: torch.Tensor, quantizer: Quantizer
) -> Prepared:
    calibration = recipe.calibrate(net, calib_x)
    theta_of = {s.index: t for s, t in zip(population_stages(net), calibration.thetas,
                                           strict=True)}
    ups: dict[int, float] = {}
    if quantizer is Quantizer.HYSTERESIS:
        ups = measure_up_rates(recipe.build(net, calibration), calib_x[:UP_FRAMES])
    module = to_module(net)
    quantizers: list[torch.nn.Module] = []
    for i, k in _sites(net):
        q = QuantReLU(theta_of[k], quantizer, ups.get(k, 0.0))
        module.layers[i] = q
        quantizers.append(q)
    return Prepared(
        module, quantizers, lambda x: binarize(x, recipe.input_threshold),
        {"thetas": calibration.thetas, "up_rates": [ups.get(k, 0.0) for _, k in _sites(net)]},
    )


def _prepare_rate(recipe: RateRecipe, net: Network, calib_x: torch.Tensor) -> Prepared:
    scales = recipe.calibrate(net, calib_x).scales
    module = to_module(net)
    site_of: dict[int, QCFS] = {}  # ReLU layer index -> its quantizer
    quantizers: list[torch.nn.Module] = []
    for i, k in _sites(net):
        if isinstance(net.layers[k], (Linear, Conv2d, Add)):
            q = QCFS(recipe.steps, scales[k] * recipe.threshold)
        else:
            q = QCFS(recipe.steps, tied=_scale_sources(net, k, site_of, recipe.threshold))
        module.layers[i] = site_of[i] = q
        quantizers.append(q)
    return Prepared(module, quantizers, lambda x: x,
                    {"initial_lambdas": [float(q.scale().detach()) for q in quantizers]})


def _scale_sources(
    net: Network, k: int, site_of: dict[int, QCFS], theta: float
) -> tuple[QCFS | float, ...]:
    """What sets the scale of layer k's output, a non-negative value routed or pooled from
    populations (their quantizers) or the input (scale theta: the input lies in [0, 1])."""
    if k == INPUT:
        return (theta,)
    layer = net.layers[k]
    if isinstance(layer, ReLU):
        return (site_of[k],)
    if isinstance(layer, (MaxPool2d, Flatten, AvgPool2d, Concat)):
        return tuple(q for j in net.sources[k] for q in _scale_sources(net, j, site_of, theta))
    raise ValueError(f"layer {net.names[k]!r}: a ReLU after it reads a signed value the rate "
                     "scheme cannot pool")


def _fold_rate(
    recipe: RateRecipe, net: Network, lam: list[float], calib_x: torch.Tensor
) -> Network:
    """``net`` rescaled so each population's lambda is one threshold (see module docstring)."""
    scales = list(data_based(net, calib_x, recipe.percentile).scales)
    for (_, k), lam_k in zip(_sites(net), lam, strict=True):
        if isinstance(net.layers[k], (Linear, Conv2d, Add)):
            scales[k] = lam_k / recipe.threshold
    return apply_scales(net, tuple(scales)).network
