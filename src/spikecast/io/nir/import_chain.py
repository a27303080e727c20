"""Import a NIR graph as a rate-coded spikecast model (simulated by the rate scheme's sim).

Accepted: a chain Input -> ... -> Output of Affine, Linear, Conv2d (dilation 1, groups 1),
AvgPool2d, SumPool2d, Flatten, Scale and neuron nodes IF, LIF and CubaLIF (leak-free only,
see :mod:`spikecast.io.nir.mappers`), read on a dt = 1 grid (v <- v + r I per step, the
Affine bias added every step). Each neuron node becomes the IF population after the
preceding synaptic node (a ReLU record, except for the output population); every synaptic
node needs one. Unknown node types raise ``ValueError`` naming the node. Graphs with
branches or merges are read by :mod:`spikecast.io.nir.import_dag`.

* Threshold: NIR fires when v > v_thr; spikecast when v >= theta with
  theta = nextafter(float32(v_thr), +inf), equal for float32 membranes. v_reset must be 0.
* One theta per model: when every neuron of the graph has the same threshold it is the
  model's theta; otherwise thresholds (and gains r) are folded into the incoming weights,
  W_i <- W_i r_i / theta_i, b_i <- b_i r_i / theta_i, with theta = 1 (exact in real
  arithmetic: v_i >= theta_i iff v_i / theta_i >= 1). A Conv2d or pool population needs
  the same factor within each channel (shared weights).
* Charge: spikecast spikes carry theta, NIR spikes 1 (times any Scale on the way), so a
  layer fed by a population gets W <- W s / theta. An average pool that must be scaled
  becomes the equivalent Conv2d. SumPool2d is the exact Conv2d with a ones weight on the
  channel diagonal, unless spikecast wrote it for a MaxPool2d (restored from metadata).
* Graphs written by spikecast: the rate recipe in the metadata is restored (reset by
  subtraction included) and explicit arguments override it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from spikecast.io.nir.import_dag import read_dag
from spikecast.io.nir.mappers import dispatch, input_shape, load_meta, spikecast_threshold
from spikecast.ir.graph import AvgPool2d, Conv2d, Flatten, Layer, Linear, Network, ReLU
from spikecast.schemes.rate import RateModel, RateRecipe
from spikecast.schemes.rate.sim import InputCoding


@dataclass
class _Synapse:
    """A synaptic node in NIR units with the factors still to fold into it."""

    name: str
    layer: Linear | Conv2d | AvgPool2d
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_scale: np.ndarray
    from_population: bool
    out_scale: np.ndarray
    population: str | None = None
    threshold: np.ndarray | None = None
    gain: np.ndarray | None = None
    relu: bool | None = None


def _shape_after(name: str, layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    try:
        with torch.no_grad():
            return tuple(layer.forward(torch.zeros(1, *shape)).shape[1:])
    except RuntimeError as exc:
        raise ValueError(f"node {name!r} does not accept inputs of shape {shape}: {exc}") from exc


def _full(values: Any, shape: tuple[int, ...], name: str, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size != 1 and arr.size != int(np.prod(shape)):
        raise ValueError(f"node {name!r}: {what} has shape {arr.shape}, expected {shape}")
    return np.broadcast_to(arr.reshape(-1) if arr.size == 1 else arr.reshape(shape), shape)


class Builder:
    """Collects the chain's layers in NIR units; :meth:`network` folds the factors."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.input_shape = input_shape
        self.shape = input_shape
        self.items: list[_Synapse | tuple[str, Layer]] = []
        self.pending: _Synapse | None = None
        self.in_scale = np.ones(input_shape)
        self.from_population = False

    def synaptic(self, name: str, layer: Linear | Conv2d | AvgPool2d) -> None:
        """A synaptic node; its neuron population must come next (through Scale nodes)."""
        if self.pending is not None:
            raise ValueError(
                f"node {name!r} follows synaptic node {self.pending.name!r} without a neuron "
                "population in between; spikecast needs IF neurons after every synaptic node"
            )
        out_shape = _shape_after(name, layer, self.shape)
        self.pending = _Synapse(
            name, layer, self.shape, out_shape, self.in_scale, self.from_population,
            np.ones(out_shape),
        )
        self.items.append(self.pending)
        self.shape = out_shape

    def route(self, name: str, layer: Layer) -> None:
        """A Flatten or restored MaxPool2d on the spike path; pending Scales move past it."""
        if self.pending is not None:
            raise ValueError(
                f"node {name!r} ({type(layer).__name__}) sits between synaptic node "
                f"{self.pending.name!r} and its neurons; spikecast routes spikes only"
            )
        shape = _shape_after(name, layer, self.shape)
        first = self.in_scale.flat[0]
        if np.all(self.in_scale == first) and (first > 0 or isinstance(layer, Flatten)):
            self.in_scale = np.full(shape, first)
        elif isinstance(layer, Flatten):
            self.in_scale = self.in_scale.reshape(shape)
        else:
            raise ValueError(
                f"node {name!r}: a non-uniform or negative Scale before a "
                f"{type(layer).__name__} cannot be moved past it"
            )
        self.shape = shape
        self.items.append((name, layer))

    def scale(self, name: str, s: np.ndarray) -> None:
        """Scale the pending synaptic node's outputs, else the next synaptic node's inputs."""
        s = _full(s, self.shape, name, "scale")
        if self.pending is not None:
            self.pending.out_scale = self.pending.out_scale * s
        else:
            self.in_scale = self.in_scale * s

    def population(
        self, name: str, threshold: np.ndarray, gain: np.ndarray, meta: dict[str, Any]
    ) -> None:
        """Neurons (spikecast thresholds, input gains r) closing the pending synaptic node."""
        syn = self.pending
        if syn is None:
            raise ValueError(
                f"node {name!r}: a neuron population must directly follow a synaptic node "
                "(Affine, Linear, Conv2d, AvgPool2d, SumPool2d), optionally through Scale"
            )
        syn.population = name
        syn.threshold = _full(threshold, self.shape, name, "v_threshold")
        syn.gain = _full(gain, self.shape, name, "r")
        syn.relu = meta.get("relu")
        self.pending = None
        self.in_scale = np.ones(self.shape)
        self.from_population = True

    def network(self) -> tuple[Network, float]:
        """The spikecast network and its theta (see the module docstring)."""
        if self.pending is not None:
            raise ValueError(
                f"synaptic node {self.pending.name!r} has no neuron population after it; "
                "spikecast simulates IF neurons after every synaptic layer"
            )
        syns = [it for it in self.items if isinstance(it, _Synapse)]
        if not syns:
            raise ValueError("the NIR graph has no synaptic node (Affine, Linear, Conv2d, pool)")
        all_thr = np.concatenate([s.threshold.reshape(-1) for s in syns])
        uniform = bool(np.all(all_thr == all_thr[0]))
        theta = float(all_thr[0]) if uniform else 1.0
        if not theta > 0 or not np.all(all_thr > 0):
            raise ValueError(f"thresholds must be > 0 (spikecast theta), got min {all_thr.min()}")
        layers: list[Layer] = []
        names: list[str] = []
        for item in self.items:
            if isinstance(item, tuple):
                names.append(item[0])
                layers.append(item[1])
                continue
            charge = theta if item.from_population else 1.0
            row = item.out_scale * item.gain / (1.0 if uniform else item.threshold)
            layers.append(_fold(item, item.in_scale / charge, row))
            names.append(item.name)
            if item is not syns[-1] or item.relu:
                layers.append(ReLU())
                names.append(item.population)
        return Network(tuple(layers), tuple(names), tuple(self.input_shape)), theta


def _per_channel(arr: np.ndarray, syn: _Synapse, what: str) -> np.ndarray:
    """(C, H, W) factors that must be constant within each channel -> (C,)."""
    if arr.ndim != 3 or np.any(arr != arr[:, :1, :1]):
        raise ValueError(
            f"node {syn.name!r}: its {what} differ within a channel; shared convolution or "
            "pooling weights cannot take per-position factors"
        )
    return arr[:, 0, 0]


def _fold(syn: _Synapse, col: np.ndarray, row: np.ndarray) -> Layer:
    """Multiply the inputs of ``syn.layer`` by ``col`` and its outputs by ``row`` (no-op,
    bit for bit, when both are all ones)."""
    layer = syn.layer
    if np.all(col == 1) and np.all(row == 1):
        return layer
    if isinstance(layer, Linear):
        if col.ndim != 1 or row.ndim != 1:
            raise ValueError(f"node {syn.name!r}: Linear in/out shapes must be 1-D")
        factor = torch.from_numpy(np.outer(row, col))
        w = (layer.weight.double() * factor).float()
        b = None if layer.bias is None else (layer.bias.double() * torch.from_numpy(row)).float()
        return Linear(w, b)
    c_in = _per_channel(col, syn, "input scales")
    c_out = _per_channel(row, syn, "neuron gains / thresholds")
    if isinstance(layer, AvgPool2d):
        layer = Conv2d(layer.as_conv_weight(syn.in_shape[0]), None, layer.stride, layer.padding)
    factor = torch.from_numpy(np.outer(c_out, c_in))[:, :, None, None]
    w = (layer.weight.double() * factor).float()
    b = None if layer.bias is None else (layer.bias.double() * torch.from_numpy(c_out)).float()
    return Conv2d(w, b, layer.stride, layer.padding)


def _chain(graph: nir.NIRGraph) -> list[tuple[str, nir.NIRNode]]:
    """The nodes from the single Input to the single Output, in order."""
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"the NIR graph has {len(inputs)} Input nodes; spikecast needs one")
    succ: dict[str, list[str]] = defaultdict(list)
    pred: dict[str, list[str]] = defaultdict(list)
    for a, b in graph.edges:
        succ[a].append(b)
        pred[b].append(a)
    order: list[tuple[str, nir.NIRNode]] = []
    name = inputs[0]
    while True:
        node = graph.nodes[name]
        if len(pred[name]) > 1:
            raise ValueError(
                f"node {name!r} has {len(pred[name])} inputs ({', '.join(pred[name])}), summed "
                "in NIR; spikecast imports chains of nodes only"
            )
        order.append((name, node))
        if isinstance(node, nir.Output):
            break
        if len(succ[name]) != 1:
            what = "ends without an Output node" if not succ[name] else (
                f"feeds {len(succ[name])} nodes ({', '.join(succ[name])})"
            )
            raise ValueError(f"node {name!r} {what}; spikecast imports chains of nodes only")
        name = succ[name][0]
        if any(name == k for k, _ in order):
            raise ValueError(f"node {name!r} is on a cycle; spikecast imports feed-forward chains")
    missing = sorted(set(graph.nodes) - {k for k, _ in order})
    if missing:
        raise ValueError(f"nodes {missing} are not on the path from Input to Output")
    return order


def _is_chain(graph: nir.NIRGraph) -> bool:
    """No node has two inputs or feeds two nodes."""
    heads = [a for a, _ in graph.edges]
    tails = [b for _, b in graph.edges]
    return len(set(heads)) == len(heads) and len(set(tails)) == len(tails)


def _read_chain(graph: nir.NIRGraph) -> tuple[Network, float]:
    chain = _chain(graph)
    builder = Builder(input_shape(chain[0][1]))
    for name, node in chain[1:-1]:
        dispatch(name, node, builder)
    return builder.network()


def _recipe(
    meta: dict[str, Any], theta: float, overrides: dict[str, Any]
) -> RateRecipe:
    params: dict[str, Any] = {"reset": "zero", "v_init": 0.0}  # NIR's IF: reset to 0, v(0) = 0
    # the graph holds normalized weights: spikecast's own recorded normalization is done
    params |= meta.get("recipe", {}) | {"normalization": "none"}
    recorded = params.get("threshold")
    if recorded is None or np.float32(recorded) != np.float32(theta):
        params["threshold"] = theta
    params |= {k: v for k, v in overrides.items() if v is not None}
    try:
        return RateRecipe(**params)
    except TypeError as exc:
        raise ValueError(f"the graph's spikecast recipe {params} is not a rate recipe") from exc


def read_nir(
    source: str | Path | nir.NIRGraph,
    steps: int | None = None,
    *,
    input_coding: InputCoding | str | None = None,
    seed: int | None = None,
) -> RateModel:
    """A :class:`RateModel` from a NIR file or graph (see the module docstring).

    ``steps``, ``input_coding`` and ``seed`` default to the values spikecast recorded in
    the graph, else 64, ``constant`` and 0.
    """
    if isinstance(source, nir.NIRGraph):
        graph = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"{path}: no such NIR file")
        try:
            graph = nir.read(path)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable NIR file (corrupt or truncated): "
                             f"{exc}") from exc
    net, theta = _read_chain(graph) if _is_chain(graph) else read_dag(graph, spikecast_threshold)
    meta = load_meta(graph, "graph")
    recipe = _recipe(meta, theta, {"steps": steps, "input_coding": input_coding, "seed": seed})
    return recipe.build(net, recipe.calibrate(net, None))
