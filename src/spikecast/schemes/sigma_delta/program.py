"""Compile a :class:`~spikecast.ir.graph.Network` (chain or DAG) into the arrays the event kernel
walks.

*Nodes* are flat, row-major value arrays: node 0 is the input, then, in network order, one
node per neuron population (a stage with ``population=True``) and per max-pool unit block.
Everything between nodes is linear (Flatten, synaptic layers without a ReLU, Add, Concat),
so the pre-activation of population P is sum_m A_Pm (theta_m q_m) + b_P over its *source
nodes* m, with A_Pm the composition of the layers on every path m -> P (an Add input scaled
by its weight, a Concat input placed in its channel block and scaled) and b_P the biases of
those layers propagated the same way (P's potential starts at b_P). Each source node m gets
one outgoing *edge* per destination:

* ``SYNAPSES``: a CSR table source unit -> (target, weight) of A_Pm. A path of one
  Linear/Conv2d/AvgPool2d keeps the layer's own table order; a composed table lists its
  structural targets (some path connects them; cancelled sums keep weight 0) in ascending
  order. Weights are float32 when that is lossless, else float64;
* ``MAXPOOL``: a CSR table source unit -> pool units containing it, and unit -> window. A
  max-pool over a Concat gets one pool node per concatenated input (max commutes with the
  positive Concat weight, which moves into the pool node's outgoing tables); its inputs must
  be populations, the input or pool nodes, each feeding at most one max-pool, and every
  pool node is numbered right after its source (the kernel relies on it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np
import scipy.sparse as sp
import torch

from spikecast.ir.graph import (
    INPUT,
    Add,
    Concat,
    Conv2d,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    Network,
    Stage,
)
from spikecast.schemes.sigma_delta.neuron import check_theta
from spikecast.schemes.sigma_delta.tables import (
    SUPPORTED_LAYERS,
    Expr,
    composed_table,
    csr_pointers,
    layer_table,
    placement,
    stage_bias,
    sum_exprs,
)


class NodeKind(IntEnum):
    INPUT = 0
    POPULATION = 1
    POOL = 2


class EdgeKind(IntEnum):
    SYNAPSES = 1
    MAXPOOL = 2


# The kernel packs a node index into 6 bits of a queue entry (node 0 is the input).
MAX_NODES = 63


@dataclass(frozen=True, eq=False)
class Program:
    """Node arrays, edge arrays (edges of node m: ``edge_ptr[m]:edge_ptr[m+1]``, its SYNAPSES
    edges first, up to ``edge_syn_end[m]``, each kind in destination order) and the
    concatenated tables (see module docstring). ``node_stage[m]`` is the stage producing
    node m (None for the input), ``node_shape[m]`` its per-sample shape, ``pool_source[m]``
    the source node of a pool node (-1 otherwise); ``edge_stage[e]`` is the synaptic stage
    whose layer alone realizes a SYNAPSES edge (None for composed edges); ``fired_cap`` is
    the largest fan-out of one unit along one edge."""

    node_offset: np.ndarray
    node_kind: np.ndarray
    node_theta: np.ndarray
    node_relu: np.ndarray
    bias: np.ndarray
    edge_syn_end: np.ndarray
    edge_ptr: np.ndarray
    edge_kind: np.ndarray
    edge_dst: np.ndarray
    edge_src_ptr_offset: np.ndarray
    edge_win_ptr_offset: np.ndarray
    src_ptr: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    win_ptr: np.ndarray
    win_src: np.ndarray
    fired_cap: int
    node_stage: tuple[Stage | None, ...]
    node_shape: tuple[tuple[int, ...], ...]
    pool_source: tuple[int, ...]
    edge_stage: tuple[Stage | None, ...]

    @property
    def n_nodes(self) -> int:
        return len(self.node_kind)

    def check_frames(self, x: torch.Tensor) -> None:
        """Raise ValueError unless every frame of ``x`` (batch, ...) has the input's size."""
        shape = self.node_shape[0]
        if x.dim() < 1 or x[0].numel() != self.node_offset[1]:
            got = tuple(x.shape[1:]) if x.dim() else ()
            raise ValueError(f"frames of shape {got}; this network takes {tuple(shape)} "
                             f"({int(self.node_offset[1])} values)")

    def populations(self) -> list[int]:
        return [m for m in range(self.n_nodes) if self.node_kind[m] == NodeKind.POPULATION]

    def kernel_arrays(self) -> tuple:
        """The arrays :func:`spikecast.schemes.sigma_delta.kernel.run_frame` takes, in order."""
        return (self.node_offset, self.node_kind, self.node_theta, self.node_relu, self.bias,
                self.edge_ptr, self.edge_syn_end, self.edge_dst,
                self.edge_src_ptr_offset, self.edge_win_ptr_offset, self.src_ptr, self.target,
                self.weight, self.win_ptr, self.win_src, self.fired_cap)

    def edge_table(self, e: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row pointers from 0, targets, weights) of edge e."""
        m = int(np.searchsorted(self.edge_ptr, e, side="right") - 1)
        n_src = int(self.node_offset[m + 1] - self.node_offset[m])
        start = int(self.edge_src_ptr_offset[e])
        ptr = self.src_ptr[start : start + n_src + 1]
        return ptr - ptr[0], self.target[ptr[0] : ptr[-1]], self.weight[ptr[0] : ptr[-1]]


def float64_layer(layer: Layer, with_bias: bool = True) -> Layer:
    """``layer`` with float64 weights (and no bias unless ``with_bias``)."""
    if not isinstance(layer, (Linear, Conv2d)):
        return layer
    bias = layer.bias.double() if with_bias and layer.bias is not None else None
    return replace(layer, weight=layer.weight.double(), bias=bias)


def population_stages(net: Network) -> list[Stage]:
    """The neuron populations in order (stages with ``population=True``), one theta each."""
    return [s for s in net.stages() if s.population]


class _Compiler:
    """Walks the stages once, creating nodes and edges (see module docstring)."""

    def __init__(self, net: Network, thetas: tuple[float, ...], input_level: float) -> None:
        self.stages = {s.index: s for s in net.stages()}
        self.exprs: dict[int, Expr] = {}
        self.node_of: dict[int, int] = {INPUT: 0}
        self.pool_blocks: dict[int, list[tuple[int, float]]] = {}
        self.shapes = [tuple(net.input_shape)]
        self.kind, self.theta, self.relu = [NodeKind.INPUT], [input_level], [False]
        self.biases = [np.zeros(math.prod(net.input_shape))]
        self.node_stage: list[Stage | None] = [None]
        self.pool_source = [-1]
        self.edges: list[list[tuple]] = [[]]
        self.exprs[INPUT] = self._identity(0)
        self.thetas = iter(thetas)

    def _identity(self, m: int) -> Expr:
        n = math.prod(self.shapes[m])
        w, s = placement(n, 0, n, 1.0)
        return Expr({m: w}, {m: s}, np.zeros(n))

    def _label(self, m: int) -> str:
        return "the input" if m == 0 else f"{self.node_stage[m].name!r}"

    def _new_node(self, kind: NodeKind, stage: Stage, shape: tuple, theta: float, relu: bool,
                  bias: np.ndarray) -> int:
        if len(self.kind) > MAX_NODES:
            raise ValueError(
                f"the sigma-delta kernel handles at most {MAX_NODES} populations and pool "
                f"blocks; layer {stage.name!r} would be node {len(self.kind)}"
            )
        self.kind.append(kind)
        self.shapes.append(shape)
        self.theta.append(theta)
        self.relu.append(relu)
        self.biases.append(bias)
        self.node_stage.append(stage)
        self.pool_source.append(-1)
        self.edges.append([])
        return len(self.kind) - 1

    def _through_flatten(self, k: int) -> int:
        while k != INPUT and isinstance(self.stages[k].layer, Flatten):
            k = self.stages[k].sources[0]
        return k

    def expr(self, k: int) -> Expr:
        if k not in self.exprs:
            s = self.stages[k]
            layer = s.layer
            if isinstance(layer, Flatten):
                self.exprs[k] = self.expr(s.sources[0])
            elif s.synaptic:
                src, tgt, wt = layer_table(layer, s.in_shape, s.name)
                shape = (s.neurons, math.prod(s.in_shape))
                t = sp.csr_matrix((wt, (tgt, src)), shape=shape)
                ts = sp.csr_matrix((np.ones(len(src)), (tgt, src)), shape=shape)
                self.exprs[k] = self.expr(s.sources[0]).apply(t, ts, stage_bias(s))
            elif isinstance(layer, (Add, Concat)):
                parts, offset = [], 0
                for j, w_k, shape in zip(s.sources, layer.weights, s.in_shapes, strict=True):
                    n_k = math.prod(shape)
                    at = offset if isinstance(layer, Concat) else 0
                    t, ts = placement(s.neurons, at, n_k, w_k)
                    offset += n_k
                    parts.append(self.expr(j).apply(t, ts, np.zeros(s.neurons)))
                self.exprs[k] = sum_exprs(parts, s.neurons)
            else:
                raise ValueError(
                    f"layer {s.name!r} ({type(layer).__name__}) is not supported by the "
                    f"sigma-delta simulator; supported: {SUPPORTED_LAYERS}"
                )
        return self.exprs[k]

    def population(self, s: Stage) -> None:
        if not (s.synaptic or isinstance(s.layer, Add)):
            raise ValueError(
                f"layer {s.name!r} ({type(s.layer).__name__}) cannot be a sigma-delta "
                "population: the readout and every ReLU must follow a Linear/Conv2d/"
                "AvgPool2d/Add (the last layer included)"
            )
        theta = next(self.thetas)
        direct = self._through_flatten(s.sources[0]) if s.synaptic else None
        if direct in self.node_of:
            m_src = self.node_of[direct]
            m = self._new_node(NodeKind.POPULATION, s, s.out_shape, theta, s.relu, stage_bias(s))
            src, tgt, wt = layer_table(s.layer, s.in_shape, s.name)
            self.edges[m_src].append((m, EdgeKind.SYNAPSES, src, tgt, wt, s))
        else:
            pre = self.expr(s.index)
            m = self._new_node(NodeKind.POPULATION, s, s.out_shape, theta, s.relu, pre.bias)
            for m_src, w in pre.w.items():
                table = composed_table(w, pre.s[m_src], s)
                self.edges[m_src].append((m, EdgeKind.SYNAPSES, *table))
        self.node_of[s.index] = m
        self.exprs[s.index] = self._identity(m)

    def _pool_blocks(self, k: int, pool: Stage) -> list[tuple[int, float]]:
        """(source node, scale) per channel block of a max-pool's input."""
        if k in self.node_of:
            return [(self.node_of[k], 1.0)]
        if k in self.pool_blocks:
            return self.pool_blocks[k]
        s = self.stages[k]
        if isinstance(s.layer, Concat):
            out = []
            for j, w_k in zip(s.sources, s.layer.weights, strict=True):
                if not w_k > 0:
                    raise ValueError(
                        f"max-pool {pool.name!r}: Concat {s.name!r} input weight {w_k} must be "
                        "> 0 (max commutes only with a positive scale)"
                    )
                out += [(m, c * w_k) for m, c in self._pool_blocks(j, pool)]
            return out
        raise ValueError(
            f"max-pool {pool.name!r} is fed by {s.name!r} ({type(s.layer).__name__}), a "
            "current without neurons; the sigma-delta max-pool takes spikes of a population, "
            "the input or another max-pool, possibly through Concat"
        )

    def max_pool(self, s: Stage) -> None:
        layer = s.layer
        parts, offset, blocks = [], 0, []
        for m_src, scale in self._pool_blocks(s.sources[0], s):
            c = self.shapes[m_src][0]
            in_shape = (c, *s.in_shape[1:])
            shape = (c, *s.out_shape[1:])
            n = math.prod(shape)
            m = self._new_node(NodeKind.POOL, s, shape, self.theta[m_src], False, np.zeros(n))
            if m_src in self.pool_source:
                raise ValueError(
                    f"max-pool {s.name!r}: {self._label(m_src)} already feeds max-pool "
                    f"{self.node_stage[self.pool_source.index(m_src)].name!r}; the sigma-delta "
                    "kernel routes each population (or the input) into at most one max-pool"
                )
            self.pool_source[m] = m_src
            src, tgt, _ = layer_table(layer, in_shape, s.name)
            self.edges[m_src].append((m, EdgeKind.MAXPOOL, src, tgt, n))
            blocks.append((m, scale))
            t, ts = placement(s.neurons, offset, n, scale)
            parts.append(self._identity(m).apply(t, ts, np.zeros(s.neurons)))
            offset += n
        self.exprs[s.index] = sum_exprs(parts, s.neurons)
        self.pool_blocks[s.index] = blocks
        if len(blocks) == 1 and blocks[0][1] == 1.0:
            self.node_of[s.index] = blocks[0][0]

    def renumber(self) -> None:
        """Give every pool node the index right after its source node (the kernel relies
        on it); order stays topological and the output stays last."""
        child = {src: m for m, src in enumerate(self.pool_source) if src >= 0}
        order: list[int] = []
        for m in range(len(self.kind)):
            if self.pool_source[m] >= 0:
                continue  # placed right after its source
            order.append(m)
            while order[-1] in child:
                order.append(child[order[-1]])
        new = {old: k for k, old in enumerate(order)}
        self.edges = [[(new[e[0]], *e[1:]) for e in self.edges[m]] for m in order]
        self.pool_source = [new.get(self.pool_source[m], -1) for m in order]
        for name in ("kind", "theta", "relu", "biases", "node_stage", "shapes"):
            values = getattr(self, name)
            setattr(self, name, [values[m] for m in order])


def build_program(
    net: Network, thetas: tuple[float, ...], input_level: float = 1.0
) -> Program:
    """Compile ``net`` with one theta per population (see :func:`population_stages`) and
    the input's level theta_in (the value of one input spike)."""
    stages = net.stages()
    last = next(s for s in reversed(stages) if s.population)  # before a trailing Flatten
    if not (last.synaptic or isinstance(last.layer, Add)):
        raise ValueError(
            "the sigma-delta readout needs a Linear/Conv2d/AvgPool2d/Add last layer, got "
            f"{type(last.layer).__name__} ({last.name!r})"
        )
    n_pop = sum(s.population for s in stages)
    if len(thetas) != n_pop:
        raise ValueError(f"{len(thetas)} thresholds for {n_pop} neuron populations")
    comp = _Compiler(net, thetas, check_theta(input_level, "input level"))
    for s in stages:
        if s.population:
            comp.population(s)
        elif isinstance(s.layer, MaxPool2d):
            comp.max_pool(s)
    comp.renumber()
    return _assemble(comp)


def _assemble(comp: _Compiler) -> Program:
    sizes = [math.prod(shape) for shape in comp.shapes]
    node_offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    edge_ptr, kinds, dsts, src_off, win_off, edge_stage = [0], [], [], [], [], []
    src_ptr, targets, weights, win_ptr, win_src = [], [], [], [], []
    n_tgt = n_ptr = n_win = n_winptr = 0
    fired_cap = 1
    syn_end = []
    for m, edges in enumerate(comp.edges):
        edges = sorted(edges, key=lambda edge: edge[1])  # SYNAPSES first (stable)
        syn_end.append(len(kinds) + sum(edge[1] == EdgeKind.SYNAPSES for edge in edges))
        for edge in edges:
            d, kind, src, tgt = edge[:4]
            ptr = csr_pointers(src, sizes[m])
            src_ptr.append(ptr + n_tgt)
            src_off.append(n_ptr)
            n_ptr += len(ptr)
            n_tgt += len(tgt)
            targets.append(tgt)
            kinds.append(kind)
            dsts.append(d)
            win_off.append(n_winptr)
            if kind == EdgeKind.SYNAPSES:
                weights.append(edge[4])
                edge_stage.append(edge[5])
                fired_cap = max(fired_cap, int(np.diff(ptr).max(initial=0)))
                win_ptr.append(np.full(1, n_win, np.int64))
            else:
                weights.append(np.zeros(len(tgt)))
                edge_stage.append(None)
                order = np.lexsort((src, tgt))
                win_ptr.append(csr_pointers(tgt[order], edge[4]) + n_win)
                win_src.append(src[order])
                n_win += len(order)
            n_winptr += len(win_ptr[-1])
        edge_ptr.append(len(kinds))
    weight = np.concatenate(weights) if weights else np.zeros(0)
    w32 = weight.astype(np.float32)
    lossless = np.array_equal(w32.astype(np.float64), weight)
    return Program(
        node_offset=node_offset,
        node_kind=np.array(comp.kind, np.int64),
        node_theta=np.array(comp.theta, np.float64),
        node_relu=np.array(comp.relu, np.bool_),
        edge_syn_end=np.array(syn_end, np.int64),
        bias=np.concatenate(comp.biases).astype(np.float64),
        edge_ptr=np.array(edge_ptr, np.int64),
        edge_kind=np.array(kinds, np.int64),
        edge_dst=np.array(dsts, np.int64),
        edge_src_ptr_offset=np.array(src_off, np.int64),
        edge_win_ptr_offset=np.array(win_off, np.int64),
        src_ptr=np.concatenate(src_ptr).astype(np.int64) if src_ptr else np.zeros(1, np.int64),
        target=np.concatenate(targets).astype(np.int32) if targets else np.zeros(0, np.int32),
        weight=w32 if lossless else weight,
        win_ptr=np.concatenate(win_ptr).astype(np.int64) if win_ptr else np.zeros(1, np.int64),
        win_src=np.concatenate(win_src).astype(np.int64) if win_src else np.zeros(0, np.int64),
        fired_cap=fired_cap,
        node_stage=tuple(comp.node_stage),
        node_shape=tuple(comp.shapes),
        pool_source=tuple(comp.pool_source),
        edge_stage=tuple(edge_stage),
    )
