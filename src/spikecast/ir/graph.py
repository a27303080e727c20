"""The typed layer graph every scheme simulates.

A :class:`Network` is a directed acyclic graph of small frozen layer records holding
detached tensors, stored in topological order (a chain unless ``sources`` says otherwise).
Synaptic layers (:class:`Linear`, :class:`Conv2d`, :class:`AvgPool2d`) move charge through
weights; :class:`ReLU` marks a neuron population; :class:`Flatten` and :class:`MaxPool2d`
only route values; :class:`Add` and :class:`Concat` merge branches, each input scaled by
its weight (in a spiking network a spike arriving at an Add or Concat passes on to the
targets with that weight).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

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
    """y = W * x + b (cross-correlation), W of shape (out_ch, in_ch / groups, kh, kw), zero
    padding; with ``groups`` g the channels split into g groups, output group j reading
    input group j only (g = in_ch = out_ch is a depthwise convolution)."""

    weight: torch.Tensor
    bias: torch.Tensor | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)


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


@dataclass(frozen=True)
class Add:
    """y = sum_k w_k x_k over inputs of one shape (a residual connection has w = (1, 1))."""

    weights: tuple[float, ...]

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0] * self.weights[0]
        for w, x in zip(self.weights[1:], xs[1:], strict=True):
            out = out + x * w
        return out


@dataclass(frozen=True)
class Concat:
    """y = concat_k(w_k x_k) along the channel axis (dim 1 of a batch)."""

    weights: tuple[float, ...]

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat([x * w for w, x in zip(self.weights, xs, strict=True)], dim=1)


Layer = Linear | Conv2d | AvgPool2d | MaxPool2d | Flatten | ReLU | Add | Concat
SYNAPTIC = (Linear, Conv2d, AvgPool2d)
ROUTING = (MaxPool2d, Flatten)
MERGE = (Add, Concat)
INPUT = -1  # the source index of the network input


@dataclass(frozen=True)
class Stage:
    """One step of the spiking pipeline: a layer and whether a ReLU population follows it.

    ``index`` is the position of ``layer`` in :attr:`Network.layers`; ``in_shape`` and
    ``out_shape`` are per-sample shapes; ``sources`` are the indices of the stages feeding
    this one (:data:`INPUT` for the network input), ``in_shapes`` their shapes. A stage is a
    ``population`` (of spiking neurons) when a ReLU follows it or when it is the output.
    """

    index: int
    name: str
    layer: Layer
    relu: bool
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    sources: tuple[int, ...] = (INPUT,)
    in_shapes: tuple[tuple[int, ...], ...] = field(default=())
    population: bool = False

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
    """Layers in topological order with per-sample ``input_shape``; ``names`` label each
    layer; ``sources[i]`` lists the layers feeding layer i (:data:`INPUT` for the network
    input). ``sources=None`` means a chain. The last layer is the output."""

    layers: tuple[Layer, ...]
    names: tuple[str, ...]
    input_shape: tuple[int, ...]
    sources: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        if len(self.layers) != len(self.names):
            raise ValueError(f"{len(self.layers)} layers but {len(self.names)} names")
        if not self.layers:
            raise ValueError("a Network needs at least one layer")
        if self.sources is None:
            object.__setattr__(self, "sources", tuple((i - 1,) for i in range(len(self.layers))))
        sources = tuple(tuple(int(k) for k in src) for src in self.sources)
        object.__setattr__(self, "sources", sources)
        _check_sources(self.layers, self.names, sources)

    @property
    def is_chain(self) -> bool:
        return all(src == (i - 1,) for i, src in enumerate(self.sources))

    def consumers(self) -> list[list[int]]:
        """For every layer, the layers that read its output."""
        out: list[list[int]] = [[] for _ in self.layers]
        for i, src in enumerate(self.sources):
            for k in src:
                if k != INPUT:
                    out[k].append(i)
        return out

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of every layer, in order."""
        outs: list[torch.Tensor] = []
        for layer, src in zip(self.layers, self.sources, strict=True):
            outs.append(layer.forward(*(x if k == INPUT else outs[k] for k in src)))
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_chain:
            for layer in self.layers:
                x = layer.forward(x)
            return x
        return self.activations(x)[-1]

    __call__ = forward

    def shapes(self) -> list[tuple[int, ...]]:
        """Per-sample output shape of every layer."""
        with torch.no_grad():
            outs = self.activations(torch.zeros(1, *self.input_shape))
        return [tuple(o.shape[1:]) for o in outs]

    def with_layers(self, layers: Sequence[Layer]) -> Network:
        return replace(self, layers=tuple(layers))

    def stages(self) -> list[Stage]:
        """Group each non-ReLU layer with the ReLU that reads it.

        A canonical network (see :func:`canonicalize`) has every ReLU directly after a
        synaptic layer or an Add whose output nothing else reads, so each stage is one
        population of neurons, one synaptic projection or one routing step.
        """
        shapes = self.shapes()
        consumers = self.consumers()
        output = len(self.layers) - 1  # the output population: before trailing Flatten/ReLU
        while isinstance(self.layers[output], (Flatten, ReLU)) and self.sources[output] != (
            INPUT,
        ):
            output = self.sources[output][0]
        stage_of = {INPUT: INPUT}
        position: dict[int, int] = {}
        stages: list[Stage] = []
        for i, (layer, src) in enumerate(zip(self.layers, self.sources, strict=True)):
            if isinstance(layer, ReLU):
                k = src[0]
                if k == INPUT or not isinstance(self.layers[k], (*SYNAPTIC, Add)):
                    raise ValueError(
                        f"layer {self.names[i]!r}: ReLU must follow a Linear/Conv2d/AvgPool2d/"
                        "Add; run spikecast.ir.graph.canonicalize first"
                    )
                if len(consumers[k]) != 1:
                    raise ValueError(
                        f"layer {self.names[k]!r}: its pre-activation is read by "
                        f"{[self.names[c] for c in consumers[k]]}, not only by its ReLU; "
                        "a spiking population has one output"
                    )
                stages[position[k]] = replace(stages[position[k]], relu=True, population=True)
                stage_of[i] = k
                continue
            in_shapes = tuple(self.input_shape if k == INPUT else shapes[k] for k in src)
            position[i] = len(stages)
            stage_of[i] = i
            stages.append(Stage(
                i, self.names[i], layer, False, in_shapes[0], shapes[i],
                tuple(stage_of[k] for k in src), in_shapes, population=i == output,
            ))
        return stages

    @property
    def n_classes(self) -> int:
        return self.shapes()[-1][0]


def _check_sources(
    layers: tuple[Layer, ...], names: tuple[str, ...], sources: tuple[tuple[int, ...], ...]
) -> None:
    if len(sources) != len(layers):
        raise ValueError(f"{len(layers)} layers but {len(sources)} source lists")
    used = set()
    for i, (layer, src) in enumerate(zip(layers, sources, strict=True)):
        if any(not INPUT <= k < i for k in src):
            raise ValueError(
                f"layer {names[i]!r}: sources {src} must be earlier layers or {INPUT} (input)"
            )
        if isinstance(layer, MERGE):
            if not src or len(layer.weights) != len(src):
                raise ValueError(
                    f"layer {names[i]!r}: {type(layer).__name__} has {len(layer.weights)} "
                    f"weights for {len(src)} inputs"
                )
        elif len(src) != 1:
            raise ValueError(f"layer {names[i]!r}: {type(layer).__name__} takes one input")
        used.update(src)
    unused = [names[i] for i in range(len(layers) - 1) if i not in used]
    if unused:
        raise ValueError(f"layers {unused} feed nothing; the last layer is the only output")


def canonicalize(net: Network) -> Network:
    """Put every ReLU directly after its synaptic layer or Add, without changing the function.

    ReLU commutes with max-pooling, flattening and positively weighted concatenation
    (relu(max x) = max(relu x)), is idempotent, and is the identity on non-negative values:
    the network input (which must lie in [0, 1]), pooled or concatenated non-negative
    values. Those ReLUs are moved or dropped; a ReLU after an Add is always kept (the Add
    becomes a population) and an average pool of non-negative values gets one (it becomes a
    population). Layers nothing reads any more are removed.
    """
    layers: list[Layer] = []
    names: list[str] = []
    sources: list[tuple[int, ...]] = []
    nonneg: dict[int, bool] = {INPUT: True}
    relu_of_cache: dict[int, int] = {}

    def emit(layer: Layer, name: str, src: tuple[int, ...]) -> int:
        layers.append(layer)
        names.append(name)
        sources.append(src)
        k = len(layers) - 1
        if isinstance(layer, ReLU):
            nonneg[k] = True
        elif isinstance(layer, ROUTING):
            nonneg[k] = nonneg[src[0]]
        elif isinstance(layer, MERGE):
            nonneg[k] = all(nonneg[j] for j in src) and min(layer.weights) >= 0
        else:
            nonneg[k] = isinstance(layer, AvgPool2d) and nonneg[src[0]]
        return k

    def relu_of(k: int, name: str) -> int:
        """A node computing relu(value of node k); an Add keeps its ReLU even when its
        value is non-negative (the ReLU makes it a population)."""
        if k == INPUT:
            return k  # the input lies in [0, 1]
        if k in relu_of_cache:
            return relu_of_cache[k]
        layer = layers[k]
        if nonneg[k] and not isinstance(layer, Add):
            return k
        if isinstance(layer, Concat) and min(layer.weights) < 0:
            # relu(concat(w x)) = concat(relu(w x)): each part through its own Add + ReLU
            parts = tuple(
                relu_of(emit(Add((w,)), f"{names[k]}.{n}", (j,)), f"{names[k]}.{n}.relu")
                for n, (w, j) in enumerate(zip(layer.weights, sources[k], strict=True))
            )
            relu_of_cache[k] = emit(Concat(tuple(1.0 for _ in parts)), names[k], parts)
        elif isinstance(layer, (*ROUTING, Concat)):
            src = tuple(relu_of(j, name) for j in sources[k])
            relu_of_cache[k] = emit(layer, names[k], src)
        else:
            relu_of_cache[k] = emit(ReLU(), name, (k,))
        return relu_of_cache[k]

    new_index = {INPUT: INPUT}
    for i, (layer, name, src) in enumerate(zip(net.layers, net.names, net.sources, strict=True)):
        mapped = tuple(new_index[k] for k in src)
        if isinstance(layer, ReLU):
            new_index[i] = relu_of(mapped[0], name)
            continue
        k = emit(layer, name, mapped)
        if isinstance(layer, AvgPool2d) and nonneg[k]:
            k = emit(ReLU(), f"{name}.relu", (k,))
        new_index[i] = k
    return _prune(layers, names, sources, new_index[len(net.layers) - 1], net.input_shape)


def _prune(
    layers: list[Layer], names: list[str], sources: list[tuple[int, ...]], output: int,
    input_shape: tuple[int, ...],
) -> Network:
    """Keep the layers the output depends on (renumbered, order kept)."""
    keep = {output}
    for k in range(output, -1, -1):
        if k in keep:
            keep.update(j for j in sources[k] if j != INPUT)
    order = sorted(keep)
    renumber = {INPUT: INPUT} | {k: n for n, k in enumerate(order)}
    return Network(
        tuple(layers[k] for k in order),
        tuple(names[k] for k in order),
        tuple(input_shape),
        tuple(tuple(renumber[j] for j in sources[k]) for k in order),
    )
