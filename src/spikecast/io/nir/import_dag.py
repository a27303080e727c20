"""Import a NIR graph with branches (several edges into a node, a node feeding several).

NIR sums every edge entering a node; spikecast makes that sum explicit: a node with k > 1
inputs is read as ``Add`` (weights 1) of them, then the node. A ``Scale`` node becomes a
one-input ``Add((s,))``, so a spike passes it with weight s. Each neuron node becomes a
ReLU (an IF population) after its input, which must be a synaptic layer or an Add (one is
inserted when it is not). The same node types as for chains are read through the same
``IMPORTERS``, with two restrictions that keep the translation exact without per-neuron
weight folding across branches: one threshold for the whole graph (spikecast's theta) and
input gain r = 1. Charge: a spikecast spike carries theta, a NIR spike 1, so every edge
leaving a neuron node is scaled by 1 / theta (in the weights of the layer it enters).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import nir
import numpy as np
import torch

from spikecast.io.nir.dialect import Convention
from spikecast.io.nir.import_nodes import dispatch
from spikecast.ir.graph import (
    INPUT,
    SYNAPTIC,
    Add,
    Conv2d,
    Layer,
    Linear,
    Network,
    ReLU,
)

NEURONS = (nir.IF, nir.LIF, nir.CubaLIF)


def topological(graph: nir.NIRGraph) -> tuple[list[str], dict[str, list[str]]]:
    """Node names in a deterministic topological order (Kahn, ties by name) and each node's
    predecessors; a cycle or an unreachable node is an error."""
    preds: dict[str, list[str]] = {name: [] for name in graph.nodes}
    succ: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for a, b in graph.edges:
        if a not in graph.nodes or b not in graph.nodes:
            raise ValueError(f"edge ({a!r}, {b!r}) names a node the graph does not have")
        preds[b].append(a)
        succ[a].append(b)
    ready = sorted(n for n, p in preds.items() if not p)
    waiting = {n: len(p) for n, p in preds.items()}
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for nxt in succ[name]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
                ready.sort()
    if len(order) != len(graph.nodes):
        stuck = sorted(set(graph.nodes) - set(order))
        raise ValueError(f"nodes {stuck} are on a cycle; spikecast imports feed-forward graphs")
    return order, preds


class DagBuilder:
    """Receives the ``IMPORTERS``' calls node by node (see :meth:`begin`)."""

    def __init__(self, input_shape: tuple[int, ...], theta: float, conv: Convention) -> None:
        self.input_shape = input_shape
        self.theta = theta
        self.convention = conv
        self.layers: list[Layer] = []
        self.names: list[str] = []
        self.sources: list[tuple[int, ...]] = []
        self.shapes: dict[int, tuple[int, ...]] = {INPUT: input_shape}
        self.spiking: set[int] = set()  # layers whose output is a population's spikes
        self.value: dict[str, int] = {}  # NIR node -> layer holding its output
        self.bare: set[int] = set()  # populations without ReLU (only the output may be one)
        self.node = ""
        self.cursor = INPUT

    @property
    def shape(self) -> tuple[int, ...]:
        return self.shapes[self.cursor]

    def _emit(self, layer: Layer, name: str, sources: tuple[int, ...]) -> int:
        ins = [torch.zeros(1, *self.shapes[k]) for k in sources]
        try:
            with torch.no_grad():
                shape = tuple(layer.forward(*ins).shape[1:])
        except RuntimeError as exc:
            raise ValueError(f"node {name!r} does not accept its inputs: {exc}") from exc
        self.layers.append(layer)
        self.names.append(name)
        self.sources.append(sources)
        k = len(self.layers) - 1
        self.shapes[k] = shape
        return k

    def _charge(self, k: int, s: float = 1.0) -> float:
        """What ``s`` NIR units of signal are in spikecast units: s / theta after a
        population."""
        return s / self.theta if k in self.spiking else s

    def begin(self, name: str, preds: list[str]) -> None:
        """Start node ``name``: its input is the sum of its predecessors' outputs."""
        self.node = name
        ins = tuple(self.value[p] for p in preds)
        if len(ins) == 1:
            self.cursor = ins[0]
        else:
            weights = tuple(self._charge(k) for k in ins)
            self.cursor = self._emit(Add(weights), f"{name}.sum", ins)

    def finish(self) -> None:
        self.value[self.node] = self.cursor

    def synaptic(self, name: str, layer: Layer, in_scale: float = 1.0) -> None:
        charge = self._charge(self.cursor, in_scale)
        if charge != 1.0:
            if not isinstance(layer, (Linear, Conv2d)):
                layer = Add((charge,))  # a pool has no weights: scale its input first
                self.cursor = self._emit(layer, f"{name}.charge", (self.cursor,))
            else:
                layer = replace(layer, weight=layer.weight * charge)
        self.cursor = self._emit(layer, name, (self.cursor,))

    def route(self, name: str, layer: Layer) -> None:
        spiking = self.cursor in self.spiking
        self.cursor = self._emit(layer, name, (self.cursor,))
        if spiking:
            self.spiking.add(self.cursor)

    def scale(self, name: str, s: np.ndarray) -> None:
        values = np.unique(np.asarray(s, dtype=np.float64))
        if values.size != 1:
            raise ValueError(
                f"node {name!r}: a per-neuron Scale in a branched graph; spikecast imports "
                "one scale per Scale node there"
            )
        weight = self._charge(self.cursor, float(values[0]))
        self.cursor = self._emit(Add((weight,)), name, (self.cursor,))

    def population(
        self, name: str, threshold: np.ndarray, gain: np.ndarray, meta: dict[str, Any]
    ) -> None:
        if np.any(np.asarray(gain) != 1):
            raise ValueError(f"node {name!r}: input gain r != 1 in a branched graph; "
                             "spikecast imports r = 1 there")
        src = self.cursor
        feeds = self.layers[src] if src != INPUT else None
        if not isinstance(feeds, (*SYNAPTIC, Add)):
            src = self._emit(Add((self._charge(src),)), f"{name}.in", (src,))
        if meta.get("relu") is False:  # spikecast's output population (logits, no ReLU)
            self.cursor = src
            self.bare.add(src)
        else:
            self.cursor = self._emit(ReLU(), name, (src,))
        self.spiking.add(self.cursor)

    def network(self, output: int) -> Network:
        if output != len(self.layers) - 1:
            raise ValueError("the Output node must read the last node of the graph")
        if output not in self.spiking:
            raise ValueError(
                f"the Output node reads {self.names[output]!r}, not a neuron population; "
                "spikecast reads out spike counts, so the graph must end in IF neurons"
            )
        if self.bare - {output}:
            names = [self.names[k] for k in sorted(self.bare - {output})]
            raise ValueError(f"populations {names} are marked without ReLU but are not the "
                             "output; only the output population may be")
        return Network(tuple(self.layers), tuple(self.names), self.input_shape,
                       tuple(self.sources))


def uniform_threshold(graph: nir.NIRGraph, conv: Convention) -> float:
    """The one threshold of every neuron node (spikecast units), else an error."""
    values: set[float] = set()
    for name, node in graph.nodes.items():
        if isinstance(node, NEURONS):
            values.update(float(v) for v in np.unique(conv.theta(node.v_threshold)))
            if len(values) > 1:
                raise ValueError(
                    f"node {name!r}: thresholds {sorted(values)[:4]} differ; a branched graph "
                    "needs one threshold for all neurons"
                )
    if not values:
        raise ValueError("the NIR graph has no neuron node (IF, LIF, CubaLIF)")
    theta = values.pop()
    if not theta > 0:
        raise ValueError(f"the neurons' threshold must be > 0, got {theta}")
    return theta


def read_dag(
    graph: nir.NIRGraph, conv: Convention, shape: tuple[int, ...]
) -> tuple[Network, float]:
    """The layer graph and theta of a branched NIR graph (see the module docstring)."""
    order, preds = topological(graph)
    inputs = [n for n in order if isinstance(graph.nodes[n], nir.Input)]
    outputs = [n for n in order if isinstance(graph.nodes[n], nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"the NIR graph has {len(inputs)} Input and {len(outputs)} Output "
                         "nodes; spikecast needs one of each")
    theta = uniform_threshold(graph, conv)
    builder = DagBuilder(shape, theta, conv)
    builder.value[inputs[0]] = INPUT
    for name in order:
        node = graph.nodes[name]
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        builder.begin(name, preds[name])
        dispatch(name, node, builder)
        builder.finish()
    out_preds = preds[outputs[0]]
    if len(out_preds) != 1:
        raise ValueError(f"the Output node reads {len(out_preds)} nodes; spikecast needs one")
    return builder.network(builder.value[out_preds[0]]), builder.theta
