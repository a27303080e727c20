"""Import a NIR graph as a rate-coded spikecast model (simulated by the rate scheme's sim).

Accepted: a chain Input -> ... -> Output of Affine, Linear, Conv2d (dilation 1, any
groups), AvgPool2d, SumPool2d, Flatten, Scale and neuron nodes IF, LIF and CubaLIF
(leak-free only, see :mod:`spikecast.io.nir.import_nodes`), read on the dialect's grid
(:mod:`spikecast.io.nir.dialect`; dt = 1 for ``nir``: v <- v + r I per step, the Affine
bias added every step). Each neuron node becomes the IF population after the
preceding synaptic node (a ReLU record, except for the output population); every synaptic
node needs one. Unknown node types raise ``ValueError`` naming the node. Graphs with
branches or merges are read by :mod:`spikecast.io.nir.import_dag`.

* Threshold: NIR fires when v > v_thr; spikecast when v >= theta with
  theta = nextafter(float32(v_thr), +inf), equal for float32 membranes (the ``sinabs``
  dialect fires on v >= v_thr: theta = v_thr). v_reset must be 0 (``sinabs``: ignored, the
  neurons reset by subtraction).
* One theta per model: when every neuron of the graph has the same threshold it is the
  model's theta; otherwise thresholds (and gains r) are folded into the incoming weights,
  W_i <- W_i r_i / theta_i, b_i <- b_i r_i / theta_i, with theta = 1 (exact in real
  arithmetic: v_i >= theta_i iff v_i / theta_i >= 1). A Conv2d or pool population needs
  the same factor within each channel (shared weights).
* Charge: spikecast spikes carry theta, NIR spikes 1 (times any Scale on the way), so a
  layer fed by a population gets W <- W s / theta. An average pool that must be scaled
  becomes the equivalent Conv2d. SumPool2d is the exact Conv2d with a ones weight on the
  channel diagonal, unless spikecast wrote it for a MaxPool2d (restored from metadata).
* Graphs written by spikecast: the dialect and the rate recipe in the metadata are
  restored (reset by subtraction included) and explicit arguments override them. Graphs
  written by snnTorch, norse and sinabs: see :func:`read_nir`.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from spikecast.io.nir.dialect import Convention, NirDialect, convention
from spikecast.io.nir.import_dag import read_dag
from spikecast.io.nir.import_nodes import dispatch, input_shape
from spikecast.io.nir.meta import load_meta
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


def _double(layer: Layer) -> Layer:
    """``layer`` with float64 weights (pools have none)."""
    if isinstance(layer, (Linear, Conv2d)):
        bias = None if layer.bias is None else layer.bias.double()
        return replace(layer, weight=layer.weight.double(), bias=bias)
    return layer


def _full(values: Any, shape: tuple[int, ...], name: str, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size != 1 and arr.size != int(np.prod(shape)):
        raise ValueError(f"node {name!r}: {what} has shape {arr.shape}, expected {shape}")
    return np.broadcast_to(arr.reshape(-1) if arr.size == 1 else arr.reshape(shape), shape)


class Builder:
    """Collects the chain's layers in NIR units; :meth:`network` folds the factors."""

    def __init__(self, input_shape: tuple[int, ...], conv: Convention) -> None:
        self.input_shape = input_shape
        self.convention = conv
        self.shape = input_shape
        self.items: list[_Synapse | tuple[str, Layer]] = []
        self.pending: _Synapse | None = None
        self.pending_flatten: str | None = None  # a Flatten after the pending synapse
        self.in_scale = np.ones(input_shape)
        self.from_population = False

    def synaptic(
        self, name: str, layer: Linear | Conv2d | AvgPool2d, in_scale: float = 1.0
    ) -> None:
        """A synaptic node whose input is first multiplied by ``in_scale``; its neuron
        population must come next (through Scale nodes). A Linear right after another
        synaptic node (e.g. sinabs' SumPool2d -> Flatten -> Affine) is composed with it."""
        if self.pending is not None:
            if isinstance(layer, Linear) and in_scale == 1.0:
                self._compose(name, layer)
                return
            raise ValueError(
                f"node {name!r} follows synaptic node {self.pending.name!r} without a neuron "
                "population in between; spikecast needs IF neurons after every synaptic node"
            )
        out_shape = _shape_after(name, layer, self.shape)
        self.pending = _Synapse(
            name, layer, self.shape, out_shape, self.in_scale * in_scale, self.from_population,
            np.ones(out_shape),
        )
        self.items.append(self.pending)
        self.shape = out_shape

    def _compose(self, name: str, layer: Linear) -> None:
        """Replace the pending node L (outputs scaled by its Scale factors s) and the
        Linear (W, b) reading it by one Linear: y = W' x + b' with W' = (W diag s) J_L and
        b' = (W diag s) L(0) + b, J_L the Jacobian of L (exact in real arithmetic)."""
        syn = self.pending
        w_scaled = layer.weight.double() * torch.from_numpy(syn.out_scale.reshape(-1))
        first = _double(syn.layer)
        x = torch.zeros(w_scaled.shape[0], *syn.in_shape, dtype=torch.float64,
                        requires_grad=True)
        with torch.enable_grad():
            y = first.forward(x).flatten(1)
            if y.shape[1] != w_scaled.shape[1]:
                raise ValueError(f"node {name!r} takes {w_scaled.shape[1]} inputs, node "
                                 f"{syn.name!r} sends {y.shape[1]}")
            (y * w_scaled).sum().backward()
        bias = w_scaled @ y[0].detach()
        if layer.bias is not None:
            bias = bias + layer.bias.double()
        composed = Linear(x.grad.flatten(1).float(), bias.float())
        self.items.remove(syn)
        if len(syn.in_shape) > 1:
            self.items.append((self.pending_flatten or f"{syn.name}_flat", Flatten()))
        n_in = int(np.prod(syn.in_shape))
        self.pending = _Synapse(
            f"{syn.name}+{name}", composed, (n_in,), (composed.weight.shape[0],),
            syn.in_scale.reshape(-1), syn.from_population, np.ones(composed.weight.shape[0]),
        )
        self.items.append(self.pending)
        self.pending_flatten = None
        self.shape = self.pending.out_shape

    def route(self, name: str, layer: Layer) -> None:
        """A Flatten or restored MaxPool2d on the spike path; pending Scales move past it.
        A Flatten after a synaptic node waits for the Linear it is composed with."""
        if self.pending is not None and isinstance(layer, Flatten) and not self.pending_flatten:
            self.pending_flatten = name
            self.shape = (int(np.prod(self.shape)),)
            return
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
            out_shape = self.pending.out_shape
            self.pending.out_scale = self.pending.out_scale * s.reshape(out_shape)
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
        if self.pending_flatten is not None:
            raise ValueError(
                f"node {self.pending_flatten!r} (Flatten) sits between synaptic node "
                f"{syn.name!r} and its neurons {name!r}; spikecast routes spikes only"
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


def _read_chain(
    graph: nir.NIRGraph, conv: Convention, shape: tuple[int, ...]
) -> tuple[Network, float]:
    chain = _chain(graph)
    builder = Builder(shape, conv)
    for name, node in chain[1:-1]:
        dispatch(name, node, builder)
    return builder.network()


def _network(graph: nir.NIRGraph, conv: Convention) -> tuple[Network, float]:
    """The layer graph and theta; an Input shape with a leading 1 that the graph does not
    accept is read without it (norse's ``to_nir`` and snnTorch's ``export_to_nir`` without
    ``ignore_dims=[0]`` write the example input's batch dimension)."""
    inputs = [n for n in graph.nodes.values() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"the NIR graph has {len(inputs)} Input nodes; spikecast needs one")
    shape = input_shape(inputs[0])
    read = _read_chain if _is_chain(graph) else read_dag
    try:
        return read(graph, conv, shape)
    except ValueError:
        if len(shape) < 2 or shape[0] != 1:
            raise
        first = sys.exc_info()[1]
    try:
        return read(graph, conv, shape[1:])
    except ValueError:
        raise first from None


def _recipe(
    meta: dict[str, Any], theta: float, conv: Convention, overrides: dict[str, Any]
) -> RateRecipe:
    params: dict[str, Any] = {"reset": conv.reset.value, "v_init": 0.0}  # NIR: v(0) = 0
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


def _load(source: str | Path | nir.NIRGraph) -> nir.NIRGraph:
    if isinstance(source, nir.NIRGraph):
        return source
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"{path}: no such NIR file")
    try:
        return nir.read(path)
    except Exception as exc:  # h5py and nir raise many types on damaged files
        raise ValueError(f"{path}: not a readable NIR file (corrupt or truncated): "
                         f"{exc}") from exc


def read_nir(
    source: str | Path | nir.NIRGraph,
    steps: int | None = None,
    *,
    input_coding: InputCoding | str | None = None,
    seed: int | None = None,
    dialect: NirDialect | str | None = None,
) -> RateModel:
    """A :class:`RateModel` from a NIR file or graph (see the module docstring).

    ``steps``, ``input_coding`` and ``seed`` default to the values spikecast recorded in
    the graph, else 64, ``constant`` and 0. ``dialect`` (how neuron nodes are read, see
    :mod:`spikecast.io.nir.dialect`) defaults to the one spikecast recorded, else ``nir``.
    Graphs from other tools, read as they mean them:

    * snnTorch (``export_to_nir``): ``Leaky(beta=1)`` is a LIF with tau = r = inf (read as
      IF, gain 1); its reset mechanism is not written (the file says reset to zero, so
      ``Leaky(reset_mechanism="subtract")``, snnTorch's default, reads as reset to zero);
      Flatten has the torch start_dim - 1;
    * norse (``to_nir``): IF nodes, read exactly; norse writes no Flatten node;
    * sinabs (``to_nir``): its IF nodes mean reset by subtraction and v >= v_thr: pass
      ``dialect="sinabs"``. Its Flatten has ``input_type`` None, so ``nir.write`` fails on
      the graph; pass the graph object itself (spikecast infers the shapes).
    """
    graph = _load(source)
    meta = load_meta(graph, "graph")
    conv = convention(dialect or meta.get("dialect") or NirDialect.NIR)
    net, theta = _network(graph, conv)
    recipe = _recipe(meta, theta, conv,
                     {"steps": steps, "input_coding": input_coding, "seed": seed})
    return recipe.build(net, recipe.calibrate(net, None))
