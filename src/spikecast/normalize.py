"""Weight normalization for ANN-to-SNN conversion.

Both methods find a scale lambda_l for every synaptic layer's output and rescale
W_l <- W_l lambda_{l-1} / lambda_l,  b_l <- b_l / lambda_l   (lambda_0 = input maximum),
so normalized activations stay (mostly) within [0, 1], i.e. below one threshold per step.
Routing layers (Flatten, MaxPool2d) pass the scale through; AvgPool2d has fixed weights
that keep the scale (its output never exceeds its input's maximum).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikecast.graph import Conv2d, Linear, Network, ReLU


@dataclass(frozen=True)
class Normalized:
    """A rescaled network and the scale lambda_l of every layer's output (same order)."""

    network: Network
    scales: tuple[float, ...]


def _rescale(net: Network, layer_scale: list[float | None], input_scale: float) -> Normalized:
    """Apply W <- W lambda_prev / lambda, b <- b / lambda; None keeps the running scale
    (lambda = lambda_prev: W unchanged, b / lambda_prev)."""
    layers = []
    scales: list[float] = []
    prev = input_scale
    for layer, lam in zip(net.layers, layer_scale, strict=True):
        if isinstance(layer, (Linear, Conv2d)):
            lam = prev if lam is None else lam
            w = layer.weight * (prev / lam)
            b = None if layer.bias is None else layer.bias / lam
            layer = Linear(w, b) if isinstance(layer, Linear) else Conv2d(
                w, b, layer.stride, layer.padding
            )
            prev = lam
        layers.append(layer)
        scales.append(prev)
    return Normalized(net.with_layers(layers), tuple(scales))


def positive_input_sum(layer: Linear | Conv2d) -> torch.Tensor:
    """Per output neuron (channel for Conv2d): sum_i max(0, W_ji)."""
    return layer.weight.clamp(min=0).flatten(1).sum(1)


def model_based(net: Network, input_max: float = 1.0) -> Normalized:
    """Model-based normalization (Diehl et al. 2015, the SSNN paper's Fig. 2).

    lambda_l = max_j ( sum_i max(0, W_ji) lambda_{l-1} + max(0, b_j) ): the largest
    activation the layer can reach when every input is at its maximum. After rescaling,
    every neuron's positive input sum (plus positive bias) is at most 1.
    """
    lam: list[float | None] = []
    prev = input_max
    for layer in net.layers:
        if isinstance(layer, (Linear, Conv2d)):
            bound = positive_input_sum(layer) * prev
            if layer.bias is not None:
                bound = bound + layer.bias.clamp(min=0)
            cur = float(bound.max())
            lam.append(cur if cur > 0 else None)  # a layer never positive keeps the scale
            prev = cur if cur > 0 else prev
        else:
            lam.append(None)
    return _rescale(net, lam, input_max)


def data_based(
    net: Network, x_calib: torch.Tensor, percentile: float = 99.9, input_max: float = 1.0
) -> Normalized:
    """Data-based normalization (Rueckauer et al. 2017).

    lambda_l = p-th percentile of the non-zero activations of layer l (after its ReLU for
    hidden layers; the positive outputs for the last layer) on ``x_calib``; p = 100 is the
    max-norm of Diehl et al. Biases are divided by lambda_l.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if x_calib.numel() == 0:
        raise ValueError("data-based normalization needs at least one calibration sample")
    with torch.no_grad():
        acts = net.activations(x_calib)
    lam: list[float | None] = []
    n = len(net.layers)
    for i, layer in enumerate(net.layers):
        if not isinstance(layer, (Linear, Conv2d)):
            lam.append(None)
            continue
        out = acts[i + 1] if i + 1 < n and isinstance(net.layers[i + 1], ReLU) else acts[i]
        pos = out[out > 0].double()
        cur = float(torch.quantile(_subsample(pos), percentile / 100.0)) if pos.numel() else 0.0
        lam.append(cur if cur > 0 else None)
    return _rescale(net, lam, input_max)


def _subsample(v: torch.Tensor, limit: int = 10_000_000) -> torch.Tensor:
    """torch.quantile accepts at most 2**24 values; take an evenly strided subset beyond that."""
    if v.numel() <= limit:
        return v
    return v[:: -(-v.numel() // limit)]
