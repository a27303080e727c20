"""A captured :class:`~spikecast.ir.graph.Network` as a trainable ``nn.Module`` and back.

:class:`NetworkModule` holds one torch module per layer (``nn.Linear``, ``nn.Conv2d``,
``nn.AvgPool2d``, ``nn.MaxPool2d``, ``nn.Flatten``, ``nn.ReLU``, and :class:`WeightedAdd` /
:class:`WeightedConcat` for the merges, whose weights w_k are fixed buffers) wired by the
network's ``sources``; its forward is ``Network.__call__`` with the same functional calls, so
the two agree exactly. The parameters are copies of the network's tensors, so a network
read from ONNX or NIR can be trained without the Python class it came from;
:meth:`NetworkModule.to_network` reads the (trained) parameters back into a ``Network``
with the same layer graph. A module placed at a ReLU site (a quantizer during training)
becomes a ReLU again.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from spikecast.ir.graph import (
    INPUT,
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    Network,
    ReLU,
)


class WeightedAdd(nn.Module):
    """y = sum_k w_k x_k (fixed weights, as :class:`spikecast.ir.graph.Add`)."""

    def __init__(self, weights: tuple[float, ...]) -> None:
        super().__init__()
        self.weights = tuple(float(w) for w in weights)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return Add(self.weights).forward(*xs)


class WeightedConcat(nn.Module):
    """y = concat_k(w_k x_k) along dim 1 (fixed weights, as :class:`Concat`)."""

    def __init__(self, weights: tuple[float, ...]) -> None:
        super().__init__()
        self.weights = tuple(float(w) for w in weights)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return Concat(self.weights).forward(*xs)


def _module(layer: Layer) -> nn.Module:
    if isinstance(layer, Linear):
        out_f, in_f = layer.weight.shape
        m = nn.Linear(in_f, out_f, bias=layer.bias is not None, dtype=layer.weight.dtype)
    elif isinstance(layer, Conv2d):
        out_c, in_c, kh, kw = layer.weight.shape
        m = nn.Conv2d(in_c, out_c, (kh, kw), layer.stride, layer.padding,
                      bias=layer.bias is not None, dtype=layer.weight.dtype)
    elif isinstance(layer, AvgPool2d):
        return nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding)
    elif isinstance(layer, MaxPool2d):
        return nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    elif isinstance(layer, Flatten):
        return nn.Flatten()
    elif isinstance(layer, ReLU):
        return nn.ReLU()
    elif isinstance(layer, Add):
        return WeightedAdd(layer.weights)
    elif isinstance(layer, Concat):
        return WeightedConcat(layer.weights)
    else:
        raise ValueError(f"no torch module for layer type {type(layer).__name__}")
    with torch.no_grad():
        m.weight.copy_(layer.weight)
        if layer.bias is not None:
            m.bias.copy_(layer.bias)
    return m


def _copy(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().cpu().clone()


def _layer(template: Layer, m: nn.Module) -> Layer:
    """The layer of ``template`` with ``m``'s current parameters (CPU copies)."""
    if isinstance(template, (Linear, Conv2d)):
        return replace(template, weight=_copy(m.weight), bias=_copy(m.bias))
    return template


class NetworkModule(nn.Module):
    """A trainable module computing ``net(x)`` (see the module docstring)."""

    def __init__(self, net: Network) -> None:
        super().__init__()
        self.template = net
        self.layers = nn.ModuleList(_module(layer) for layer in net.layers)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.template.input_shape

    def relu_sites(self) -> list[int]:
        """Indices of the ReLU layers (one per hidden neuron population, in order)."""
        return [i for i, layer in enumerate(self.template.layers) if isinstance(layer, ReLU)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for m, src in zip(self.layers, self.template.sources, strict=True):
            outs.append(m(*(x if k == INPUT else outs[k] for k in src)))
        return outs[-1]

    def to_network(self) -> Network:
        """The network with this module's parameters (detached copies, on the CPU)."""
        return self.template.with_layers(
            [_layer(t, m) for t, m in zip(self.template.layers, self.layers, strict=True)]
        )


def to_module(net: Network) -> NetworkModule:
    """A trainable ``nn.Module`` whose forward equals ``net(x)`` (parameters copied)."""
    return NetworkModule(net)
