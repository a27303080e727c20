"""Weight normalization for ANN-to-SNN conversion.

Both methods find a scale lambda for the output of every Linear, Conv2d and Add layer and
rescale  W <- W lambda_in / lambda,  b <- b / lambda  (lambda of the input = input maximum),
so normalized activations stay (mostly) within [0, 1], i.e. below one threshold per step.
Routing layers (Flatten, MaxPool2d) and ReLU pass the scale through; AvgPool2d has fixed
weights that keep the scale (its output never exceeds its input's maximum). An Add or
Concat rescales each input's weight, w_k <- w_k lambda_k / lambda (a Concat takes the
largest input scale), so every branch arrives on the merged value's scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from spikecast.ir.graph import INPUT, Add, Concat, Conv2d, Layer, Linear, Network


@dataclass(frozen=True)
class Normalized:
    """A rescaled network and the scale lambda_l of every layer's output (same order)."""

    network: Network
    scales: tuple[float, ...]


ScaleRule = Callable[[int, Layer, list[float]], float | None]


def _rescale(net: Network, measure: ScaleRule, input_scale: float) -> Normalized:
    """Walk the layers in order; ``measure(i, layer, input_scales)`` gives layer i's output
    scale (None: keep the input's, i.e. W unchanged and b / lambda_in, for layers that are
    never positive) for Linear, Conv2d and Add."""
    layers: list[Layer] = []
    scales: list[float] = []
    for i, (layer, src) in enumerate(zip(net.layers, net.sources, strict=True)):
        ins = [input_scale if k == INPUT else scales[k] for k in src]
        if isinstance(layer, (Linear, Conv2d)):
            lam = measure(i, layer, ins) or ins[0]
            bias = None if layer.bias is None else layer.bias / lam
            layer = replace(layer, weight=layer.weight * (ins[0] / lam), bias=bias)
        elif isinstance(layer, (Add, Concat)):
            lam = (measure(i, layer, ins) if isinstance(layer, Add) else None) or max(ins)
            layer = replace(layer, weights=tuple(
                w * k / lam for w, k in zip(layer.weights, ins, strict=True)
            ))
        else:
            lam = ins[0]
        layers.append(layer)
        scales.append(lam)
    return Normalized(net.with_layers(layers), tuple(scales))


def positive_input_sum(layer: Linear | Conv2d) -> torch.Tensor:
    """Per output neuron (channel for Conv2d): sum_i max(0, W_ji)."""
    return layer.weight.clamp(min=0).flatten(1).sum(1)


def model_based(net: Network, input_max: float = 1.0) -> Normalized:
    """Model-based normalization (Diehl et al. 2015, the SSNN paper's Fig. 2).

    lambda_l = max_j ( sum_i max(0, W_ji) lambda_{l-1} + max(0, b_j) ): the largest
    activation the layer can reach when every input is at its maximum; an Add reaches at
    most sum_k max(0, w_k) lambda_k. After rescaling, every neuron's positive input sum
    (plus positive bias) is at most 1.
    """

    def bound(_: int, layer: Layer, ins: list[float]) -> float | None:
        if isinstance(layer, Add):
            cur = sum(max(w, 0.0) * k for w, k in zip(layer.weights, ins, strict=True))
        else:
            b = positive_input_sum(layer) * ins[0]
            if layer.bias is not None:
                b = b + layer.bias.clamp(min=0)
            cur = float(b.max())
        return cur if cur > 0 else None  # a layer never positive keeps the scale

    return _rescale(net, bound, input_max)


def data_based(
    net: Network, x_calib: torch.Tensor, percentile: float = 99.9, input_max: float = 1.0
) -> Normalized:
    """Data-based normalization (Rueckauer et al. 2017).

    lambda_l = p-th percentile of the positive outputs of layer l on ``x_calib`` (equal to
    the non-zero activations after its ReLU); p = 100 is the max-norm of Diehl et al.
    Biases are divided by lambda_l.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if x_calib.numel() == 0:
        raise ValueError("data-based normalization needs at least one calibration sample")
    with torch.no_grad():
        acts = net.activations(x_calib)

    def measured(i: int, _: Layer, __: list[float]) -> float | None:
        pos = acts[i][acts[i] > 0].double()
        cur = float(torch.quantile(_subsample(pos), percentile / 100.0)) if pos.numel() else 0.0
        return cur if cur > 0 else None

    return _rescale(net, measured, input_max)


def _subsample(v: torch.Tensor, limit: int = 10_000_000) -> torch.Tensor:
    """torch.quantile accepts at most 2**24 values; take an evenly strided subset beyond that."""
    if v.numel() <= limit:
        return v
    return v[:: -(-v.numel() // limit)]


def apply_scales(net: Network, scales: tuple[float, ...], input_max: float = 1.0) -> Normalized:
    """Rescale ``net`` with saved scales lambda_l (one per layer, as in
    :attr:`Normalized.scales`): the same W, b and merge weights the measuring pass gave."""
    if len(scales) != len(net.layers):
        raise ValueError(f"{len(scales)} scales for a network of {len(net.layers)} layers")
    if not all(s > 0 and math.isfinite(s) for s in scales):
        raise ValueError(f"normalization scales must be finite and > 0, got {list(scales)}")
    return _rescale(net, lambda i, _, __: scales[i], input_max)
