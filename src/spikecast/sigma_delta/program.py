"""Flatten a :class:`~spikecast.graph.Network` into the arrays the event kernel walks.

The network becomes a chain of *nodes* (flat, row-major value arrays): node 0 is the input,
then one node per synaptic stage (a population of neurons) or MaxPool2d stage (pool units);
Flatten is free in flat indexing and adds no node. Between node m and m+1 sits one stage:

* ``SYNAPSES``: a CSR table source -> (target, weight); Linear, Conv2d (stride, zero
  padding) and AvgPool2d (depthwise, weight 1 / (kh kw), padding counted in the mean).
  Targets are int32 and weights float32 (exact for float32 models; the simulators
  accumulate membrane potentials in float64);
* ``MAXPOOL``: a CSR table source -> pool units that contain it, and unit -> window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np

from spikecast.graph import (
    AvgPool2d,
    Conv2d,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    Network,
    Stage,
)


class NodeKind(IntEnum):
    INPUT = 0
    POPULATION = 1
    POOL = 2


class StageKind(IntEnum):
    SYNAPSES = 1
    MAXPOOL = 2


# The kernel packs a node index into 6 bits of a queue entry (node 0 is the input).
MAX_NODES = 63
SUPPORTED_LAYERS = "Linear, Conv2d, AvgPool2d, MaxPool2d, Flatten (ReLU after synaptic layers)"


@dataclass(frozen=True, eq=False)
class Program:
    """Concatenated node and stage arrays (see module docstring); ``node_stage[m]`` is the
    network stage that produces node m (-1 for the input)."""

    node_offset: np.ndarray
    node_kind: np.ndarray
    node_theta: np.ndarray
    node_relu: np.ndarray
    bias: np.ndarray
    stage_kind: np.ndarray
    src_ptr_offset: np.ndarray
    src_ptr: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    win_ptr_offset: np.ndarray
    win_ptr: np.ndarray
    win_src: np.ndarray
    node_stage: tuple[Stage | None, ...]

    @property
    def n_nodes(self) -> int:
        return len(self.node_kind)

    @property
    def n_outputs(self) -> int:
        return int(self.node_offset[-1] - self.node_offset[-2])

    def populations(self) -> list[int]:
        return [m for m in range(self.n_nodes) if self.node_kind[m] == NodeKind.POPULATION]


def _conv_table(
    weight: np.ndarray, in_shape: tuple[int, ...], stride: tuple[int, int],
    padding: tuple[int, int], depthwise: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source, target, weight) triples of a cross-correlation, source-major order."""
    c_in, h, w = in_shape
    c_out, _, kh, kw = weight.shape
    sh, sw = stride
    ph, pw = padding
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    ci, yi, xi, co, ky, kx = np.meshgrid(
        np.arange(c_in), np.arange(h), np.arange(w), np.arange(c_out), np.arange(kh),
        np.arange(kw), indexing="ij",
    )
    ny, nx = yi + ph - ky, xi + pw - kx
    ok = (ny % sh == 0) & (nx % sw == 0)
    oy, ox = ny // sh, nx // sw
    ok &= (oy >= 0) & (oy < ho) & (ox >= 0) & (ox < wo)
    if depthwise:
        ok &= ci == co
    ci, yi, xi, co, ky, kx, oy, ox = (a[ok] for a in (ci, yi, xi, co, ky, kx, oy, ox))
    src = (ci * h + yi) * w + xi
    tgt = (co * ho + oy) * wo + ox
    wt = weight[co, 0 if depthwise else ci, ky, kx]
    return src, tgt, wt


def _stage_table(stage: Stage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    layer = stage.layer
    if isinstance(layer, Linear):
        w = layer.weight.detach().double().cpu().numpy()
        n_out, n_in = w.shape
        src = np.repeat(np.arange(n_in), n_out)
        return src, np.tile(np.arange(n_out), n_in), w.T.reshape(-1)
    if isinstance(layer, Conv2d):
        w = layer.weight.detach().double().cpu().numpy()
        return _conv_table(w, stage.in_shape, layer.stride, layer.padding, depthwise=False)
    if isinstance(layer, (AvgPool2d, MaxPool2d)):
        kh, kw = layer.kernel_size
        c = stage.in_shape[0]
        w = np.full((c, 1, kh, kw), 1.0 / (kh * kw))
        return _conv_table(w, stage.in_shape, layer.stride, layer.padding, depthwise=True)
    raise ValueError(
        f"layer {stage.name!r} ({type(layer).__name__}) is not supported by the sigma-delta "
        f"simulator; supported: {SUPPORTED_LAYERS}"
    )


def _csr(src: np.ndarray, n_src: int) -> np.ndarray:
    """Row pointers of a source-major table."""
    return np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n_src))]).astype(np.int64)


def _bias(stage: Stage) -> np.ndarray:
    n = stage.neurons
    bias = getattr(stage.layer, "bias", None)
    if bias is None:
        return np.zeros(n)
    b = bias.detach().double().cpu().numpy()
    return np.broadcast_to(b.reshape(-1, *([1] * (len(stage.out_shape) - 1))),
                           stage.out_shape).reshape(-1).copy()


def float64_layer(layer: Layer, with_bias: bool = True) -> Layer:
    """``layer`` with float64 weights (and no bias unless ``with_bias``)."""
    if not isinstance(layer, (Linear, Conv2d)):
        return layer
    bias = layer.bias.double() if with_bias and layer.bias is not None else None
    return replace(layer, weight=layer.weight.double(), bias=bias)


def population_stages(net: Network) -> list[Stage]:
    """The synaptic stages in order (one neuron population each)."""
    return [s for s in net.stages() if s.synaptic]


def build_program(net: Network, thetas: tuple[float, ...]) -> Program:
    """Compile ``net`` with one theta per population (see :func:`population_stages`)."""
    stages = [s for s in net.stages() if not isinstance(s.layer, Flatten)]
    if not stages or not stages[-1].synaptic:
        raise ValueError("the sigma-delta readout needs a Linear/Conv2d/AvgPool2d last layer")
    if len(stages) > MAX_NODES:
        raise ValueError(
            f"the sigma-delta kernel handles at most {MAX_NODES} layers (excluding Flatten), "
            f"this network has {len(stages)}"
        )
    n_pop = sum(s.synaptic for s in stages)
    if len(thetas) != n_pop:
        raise ValueError(f"{len(thetas)} thresholds for {n_pop} neuron populations")
    sizes = [math.prod(net.input_shape)]
    kinds, node_theta, relu, biases = [NodeKind.INPUT], [1.0], [False], [np.zeros(sizes[0])]
    stage_kind, src_ptr, targets, weights, win_ptr, win_src = [], [], [], [], [], []
    src_off, win_off = [0], [0]
    n_tgt = n_win = 0
    pop = 0
    for s in stages:
        src, tgt, wt = _stage_table(s)
        ptr = _csr(src, sizes[-1]) + n_tgt
        n_tgt += len(tgt)
        src_ptr.append(ptr)
        targets.append(tgt)
        src_off.append(src_off[-1] + len(ptr))
        if s.synaptic:
            stage_kind.append(StageKind.SYNAPSES)
            weights.append(wt)
            kinds.append(NodeKind.POPULATION)
            node_theta.append(thetas[pop])
            pop += 1
            relu.append(s.relu)
            biases.append(_bias(s))
            win_ptr.append(np.zeros(1, np.int64) + n_win)
        else:
            stage_kind.append(StageKind.MAXPOOL)
            weights.append(np.zeros(len(tgt)))
            kinds.append(NodeKind.POOL)
            node_theta.append(node_theta[-1])
            relu.append(False)
            biases.append(np.zeros(s.neurons))
            order = np.lexsort((src, tgt))
            win_ptr.append(_csr(tgt[order], s.neurons) + n_win)
            win_src.append(src[order])
            n_win += len(order)
        win_off.append(win_off[-1] + len(win_ptr[-1]))
        sizes.append(s.neurons)
    return Program(
        node_offset=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        node_kind=np.array(kinds, np.int64),
        node_theta=np.array(node_theta, np.float64),
        node_relu=np.array(relu, np.bool_),
        bias=np.concatenate(biases).astype(np.float64),
        stage_kind=np.array(stage_kind, np.int64),
        src_ptr_offset=np.array(src_off[:-1], np.int64),
        src_ptr=np.concatenate(src_ptr).astype(np.int64),
        target=np.concatenate(targets).astype(np.int32),
        weight=np.concatenate(weights).astype(np.float32),
        win_ptr_offset=np.array(win_off[:-1], np.int64),
        win_ptr=np.concatenate(win_ptr).astype(np.int64),
        win_src=np.concatenate(win_src).astype(np.int64) if win_src else np.zeros(0, np.int64),
        node_stage=(None, *stages),
    )
