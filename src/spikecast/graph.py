"""The typed layer graph every scheme simulates.

A :class:`Network` is a chain of small frozen layer records holding detached tensors.
Synaptic layers (:class:`Linear`, :class:`Conv2d`, :class:`AvgPool2d`) are the only ones
that move charge; :class:`ReLU` marks a neuron population; :class:`Flatten` and
:class:`MaxPool2d` only route values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F


@dataclass(frozen=True, eq=False)
class Linear:
    """y = W x + b, W of shape (out, in)."""

    weight: torch.Tensor
    bias: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


@dataclass(frozen=True, eq=False)
class Conv2d:
    """y = W * x + b (cross-correlation), W of shape (out_ch, in_ch, kh, kw), zero padding."""

    weight: torch.Tensor
    bias: torch.Tensor | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


@dataclass(frozen=True)
class AvgPool2d:
    """Mean over each window, zero padding counted in the mean."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def as_conv_weight(self, channels: int) -> torch.Tensor:
        """Depthwise-equivalent dense weight (channels, channels, kh, kw) of value 1/(kh kw)."""
        kh, kw = self.kernel_size
        w = torch.zeros(channels, channels, kh, kw)
        idx = torch.arange(channels)
        w[idx, idx] = 1.0 / (kh * kw)
        return w


@dataclass(frozen=True)
class MaxPool2d:
    """Max over each window (padding counts as -inf)."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


@dataclass(frozen=True)
class Flatten:
    """Flatten every dimension after the batch dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


@dataclass(frozen=True)
class ReLU:
    """max(0, x): marks the preceding synaptic layer's outputs as a neuron population."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


Layer = Linear | Conv2d | AvgPool2d | MaxPool2d | Flatten | ReLU
SYNAPTIC = (Linear, Conv2d, AvgPool2d)
ROUTING = (MaxPool2d, Flatten)


@dataclass(frozen=True)
class Stage:
    """One step of the spiking pipeline: a layer and whether a ReLU population follows it.

    ``index`` is the position of ``layer`` in :attr:`Network.layers`; ``in_shape`` and
    ``out_shape`` are per-sample shapes.
    """

    index: int
    name: str
    layer: Layer
    relu: bool
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def synaptic(self) -> bool:
        return isinstance(self.layer, SYNAPTIC)

    @property
    def neurons(self) -> int:
        n = 1
        for d in self.out_shape:
            n *= d
        return n


@dataclass(frozen=True, eq=False)
class Network:
    """A chain of layers with per-sample ``input_shape``; ``names`` label each layer."""

    layers: tuple[Layer, ...]
    names: tuple[str, ...]
    input_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.layers) != len(self.names):
            raise ValueError(f"{len(self.layers)} layers but {len(self.names)} names")
        if not self.layers:
            raise ValueError("a Network needs at least one layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of every layer, in order."""
        outs = []
        for layer in self.layers:
            x = layer.forward(x)
            outs.append(x)
        return outs

    def shapes(self) -> list[tuple[int, ...]]:
        """Per-sample output shape of every layer."""
        with torch.no_grad():
            outs = self.activations(torch.zeros(1, *self.input_shape))
        return [tuple(o.shape[1:]) for o in outs]

    def with_layers(self, layers: tuple[Layer, ...] | list[Layer]) -> Network:
        return replace(self, layers=tuple(layers))

    def stages(self) -> list[Stage]:
        """Group each synaptic or routing layer with the ReLU that follows it.

        A canonical network (see :func:`canonicalize`) has every ReLU directly after a
        synaptic layer, so each stage is one population of neurons or one routing step.
        """
        shapes = self.shapes()
        stages: list[Stage] = []
        in_shape = self.input_shape
        for i, layer in enumerate(self.layers):
            if isinstance(layer, ReLU):
                if not stages or not stages[-1].synaptic or stages[-1].relu:
                    raise ValueError(
                        f"layer {self.names[i]!r}: ReLU must follow a Linear/Conv2d/AvgPool2d; "
                        "run spikecast.graph.canonicalize first"
                    )
                stages[-1] = replace(stages[-1], relu=True)
                continue
            stages.append(Stage(i, self.names[i], layer, False, in_shape, shapes[i]))
            in_shape = shapes[i]
        return stages

    @property
    def n_classes(self) -> int:
        return self.shapes()[-1][0]


def canonicalize(net: Network) -> Network:
    """Put every ReLU directly after its synaptic layer, without changing the function.

    ReLU commutes with max-pooling and flattening (relu(max x) = max(relu x)), is idempotent,
    and is the identity on the network input (inputs lie in [0, 1]) and after an average
    pool of non-negative values, so those ReLUs are moved or dropped.
    """
    layers: list[Layer] = []
    names: list[str] = []
    nonneg = True  # the input lies in [0, 1]
    pending_routes: list[tuple[Layer, str]] = []
    for layer, name in zip(net.layers, net.names, strict=True):
        if isinstance(layer, ROUTING):
            pending_routes.append((layer, name))
            continue
        if isinstance(layer, ReLU):
            if not nonneg:
                layers.append(layer)
                names.append(name)
                nonneg = True
            continue
        for r, rn in pending_routes:
            layers.append(r)
            names.append(rn)
        pending_routes = []
        layers.append(layer)
        names.append(name)
        if isinstance(layer, AvgPool2d) and nonneg:
            layers.append(ReLU())
            names.append(f"{name}.relu")
        else:
            nonneg = False
    for r, rn in pending_routes:
        layers.append(r)
        names.append(rn)
    return Network(tuple(layers), tuple(names), net.input_shape)
