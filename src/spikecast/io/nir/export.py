"""Export a rate-coded spikecast model to a NIR graph (Neuromorphic Intermediate Representation).

The graph is Input -> (Affine | Conv2d | Flatten | Scale)* with a neuron node for every
population (a ReLU, and the output) -> Output; node names are the layer names with dots
replaced by underscores (nirtorch-based readers mis-wire dotted names). Layers take the
forms most readers load (:mod:`spikecast.io.nir.export_nodes`: Affine for Linear, pools
as convolutions, a batch-safe Flatten); neurons follow a dialect
(:mod:`spikecast.io.nir.dialect`): ``nir`` (IF, the standard; norse, sinabs, spikecast),
``snntorch`` (leak-free LIF in snnTorch's dt = 1e-4) or ``sinabs`` (IF read as reset by
subtraction, loadable with nir <= 1.0.4). Networks the simulator
(:mod:`spikecast.schemes.rate.sim`) rejects are rejected alike. How the semantics map:

* Threshold: spikecast fires when v >= theta; a strict reader (v > v_thr) gets
  v_thr = nextafter(float32(theta), -inf), exact for float32 membranes.
* Reset: the dialect's neuron resets to 0 (``nir``, ``snntorch``) or by subtraction
  (``sinabs``). A model with the other reset is refused unless ``approximate=True``, which
  writes the dialect's reset and lists the change (spikecast restores the model's own reset
  when it reads the file back, from the recipe in the metadata).
* Charge: a spikecast spike carries theta into the next synaptic layer (I = W (theta s) + b);
  a NIR spike is 1, so the next layer's weights are W' = theta W (exact in real arithmetic;
  bit-exact when theta is a power of two, e.g. the default 1, where it is skipped). Biases
  are constant currents, added every step, as in spikecast.
* Initial state: NIR's IF starts at v = 0; a recipe with ``v_init`` > 0 is refused unless
  ``approximate=True``, which writes v(0) = 0 and lists the change.
* Input: the Input node has the per-sample shape; under ``constant`` coding the analog x
  is fed every step, under ``poisson`` coding unit spikes are (recorded in the metadata).
* Max-pooling: NIR has none; refused unless ``approximate=True`` (a sum-pool convolution
  whose metadata records the max-pool, restored by spikecast).
* Merges: several edges into one node are summed: an Add's inputs go straight into the
  Add's population (or, for an Add without ReLU, into a ``Scale(1)`` junction), each
  through a ``Scale(w_k charge_k)`` node unless that factor is 1 (of the three peer readers
  none reads Scale). Concat has no NIR node and is refused.
* Other schemes (sigma-delta, SSNN) are refused: NIR lacks their neuron models.

Graph metadata ``{"spikecast": JSON}`` records format, dialect, dt, the threshold rule, the
rate recipe's parameters and the approximations; node metadata records a layer without
bias, a pool written as a convolution and whether a population had a ReLU.
"""

from __future__ import annotations

import copy
from pathlib import Path

import h5py
import nir
import numpy as np

from spikecast.io.atomic import atomic_write
from spikecast.io.nir.dialect import LEAK_FREE_TAU, Convention, NirDialect, convention
from spikecast.io.nir.export_nodes import EXPORTERS, ExportContext
from spikecast.io.nir.meta import dump_meta, load_meta
from spikecast.ir.graph import INPUT, Add, Network, ReLU, Stage
from spikecast.schemes.base import SpikingModel
from spikecast.schemes.rate import RateModel
from spikecast.schemes.rate.sim import signal_kinds

FORMAT = "spikecast-nir"
VERSION = 2

REFUSALS = {
    "sigma-delta": "NIR has no sigma-delta neuron (hysteresis quantizer emitting signed "
    "spikes) and no signed spikes",
    "ssnn": "NIR has no SSNN circuit model (PWM input coding, membrane floor at 0, "
    "current-mode synapses)",
}
RESET_WORDS = {"subtract": "reset by subtraction (v <- v - theta)",
               "zero": "reset to zero (v <- 0)"}


def _relu_names(net: Network) -> dict[int, str]:
    """Layer index of each synaptic layer read by a ReLU -> that ReLU's name."""
    return {
        src[0]: net.names[i]
        for i, (layer, src) in enumerate(zip(net.layers, net.sources, strict=True))
        if isinstance(layer, ReLU)
    }


def _neurons(stage: Stage, theta: float, conv: Convention) -> nir.NIRNode:
    """A population in the dialect's form: IF with r dt = 1, or a leak-free LIF with
    r dt / tau = 1."""
    ones = np.ones(stage.out_shape, dtype=np.float32)
    v_thr, meta = ones * conv.v_threshold(theta), dump_meta({"relu": stage.relu})
    if conv.neuron == "LIF":
        return nir.LIF(tau=ones * np.float32(LEAK_FREE_TAU),
                       r=ones * np.float32(LEAK_FREE_TAU / conv.dt), v_leak=ones * 0,
                       v_threshold=v_thr, v_reset=ones * 0, metadata=meta)
    return nir.IF(r=ones / np.float32(conv.dt), v_threshold=v_thr, v_reset=ones * 0,
                  metadata=meta)


def _check_model(model: SpikingModel, conv: Convention, ctx: ExportContext) -> RateModel:
    if not isinstance(model, RateModel):
        scheme = getattr(model, "scheme", type(model).__name__)
        reason = REFUSALS.get(scheme, "NIR export is implemented for rate-coded models only")
        raise ValueError(
            f"cannot export a {scheme!r} model to NIR: {reason}; only rate-coded models "
            "(scheme 'rate', IF neurons) map onto NIR"
        )
    reset = model.recipe.reset
    if reset is not conv.reset:
        ours, theirs = RESET_WORDS[reset.value], RESET_WORDS[conv.reset.value]
        if not ctx.approximate:
            raise ValueError(
                f"the model uses {ours}; the neurons of this NIR dialect use {theirs}. "
                f"Convert with reset='{conv.reset.value}', choose a dialect with that reset "
                "('sinabs' subtracts, 'nir' and 'snntorch' reset to zero), or export with "
                "approximate=True (--approximate) to write the dialect's reset (recorded in "
                "the graph metadata, restored by spikecast)"
            )
        ctx.approximations.append(
            f"{ours} written as {theirs}; other tools' spike counts differ; restored by "
            "spikecast"
        )
    if model.recipe.v_init != 0.0:
        if not ctx.approximate:
            raise ValueError(
                f"NIR's IF neuron starts at v = 0; it cannot express the initial membrane "
                f"v_init = {model.recipe.v_init} x theta. Convert with v_init=0, or export with "
                "approximate=True (--approximate) to start at 0 (recorded in the graph metadata)"
            )
        ctx.approximations.append(
            f"initial membrane v_init = {model.recipe.v_init} x theta written as 0; restored "
            "by spikecast"
        )
    return model


def node_name(name: str) -> str:
    """A layer name as a NIR node name: dots become underscores."""
    return name.replace(".", "_")


class _Writer:
    """Accumulates uniquely named nodes and the edges into them."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.nodes: dict[str, nir.NIRNode] = {"input": nir.Input(np.array(input_shape))}
        self.edges: list[tuple[str, str]] = []

    def add(self, name: str, node: nir.NIRNode, sources: list[str]) -> str:
        base = node_name(name)
        unique, k = base, 1
        while unique in self.nodes or unique == "output":
            unique, k = f"{base}_{k}", k + 1
        self.nodes[unique] = node
        self.edges.extend((src, unique) for src in sources)
        return unique


def _merge_inputs(
    w: _Writer, stage: Stage, out: dict[int, str], charge: dict[int, float]
) -> list[str]:
    """The nodes feeding an Add: each input scaled by weight x charge (a Scale node unless
    that product is 1); NIR sums the edges into one node."""
    layer: Add = stage.layer
    names = []
    for j, (k, weight, shape) in enumerate(
        zip(stage.sources, layer.weights, stage.in_shapes, strict=True)
    ):
        factor = weight * charge[k]
        if factor == 1.0:
            names.append(out[k])
        else:
            scale = nir.Scale(scale=np.full(shape, factor, dtype=np.float32))
            names.append(w.add(f"{stage.name}_in{j}", scale, [out[k]]))
    return names


def export_nir(
    model: SpikingModel, approximate: bool = False, dialect: NirDialect | str = NirDialect.NIR
) -> nir.NIRGraph:
    """The NIR graph of a rate-coded ``model`` in ``dialect`` (see the module docstring).

    ``approximate=True`` replaces what the dialect cannot express (the other reset,
    max-pooling) by its nearest form and lists each change in
    ``graph.metadata["spikecast"]``; without it those models raise ``ValueError``.
    """
    dialect = NirDialect(dialect)
    conv = convention(dialect)
    ctx = ExportContext(approximate)
    model = _check_model(model, conv, ctx)
    net, theta = model.network, model.recipe.threshold
    relu_names = _relu_names(net)
    w = _Writer(net.input_shape)
    out: dict[int, str] = {INPUT: "input"}  # stage -> NIR node sending its signal
    charge: dict[int, float] = {INPUT: 1.0}  # spikecast signal = charge x NIR signal
    stages = net.stages()
    signal_kinds(stages, model.recipe.input_coding)
    for stage in stages:
        if isinstance(stage.layer, Add):
            sources = _merge_inputs(w, stage, out, charge)
            if not stage.population:
                junction = nir.Scale(scale=np.ones(stage.out_shape, dtype=np.float32))
                out[stage.index], charge[stage.index] = w.add(stage.name, junction, sources), 1.0
                continue
        else:
            mapper = EXPORTERS.get(type(stage.layer))
            if mapper is None:
                raise ValueError(
                    f"layer {stage.name!r}: {type(stage.layer).__name__} cannot be exported to "
                    f"NIR (supported: Add, {', '.join(t.__name__ for t in EXPORTERS)})"
                )
            src = stage.sources[0]
            sources = [out[src]]
            for suffix, node in mapper(stage, charge[src], ctx):
                sources = [w.add(f"{stage.name}{suffix}", node, sources)]
            # routing keeps the charge; a synaptic layer's current is in spikecast units
            charge[stage.index] = charge[src] if not stage.synaptic else 1.0
        if stage.population:
            name = relu_names.get(stage.index, f"{stage.name}_if")
            sources = [w.add(name, _neurons(stage, theta, conv), sources)]
            charge[stage.index] = theta
        out[stage.index] = sources[0]
    last = out[stages[-1].index]
    w.nodes["output"] = nir.Output(np.array(w.nodes[last].output_type["output"]))
    w.edges.append((last, "output"))
    meta = {
        "format": FORMAT, "version": VERSION, "dialect": dialect.value, "dt": conv.dt,
        "threshold_rule": conv.rule, "recipe": model.recipe.params(),
        "approximations": ctx.approximations,
    }
    return nir.NIRGraph(w.nodes, w.edges, metadata=dump_meta(meta))


def _typed_flattens(graph: nir.NIRGraph) -> nir.NIRGraph:
    """``graph``, or a copy with its types inferred by nir when a Flatten lacks its input
    type (sinabs' ``to_nir`` writes None, which ``nir.write`` cannot store)."""
    untyped = [n for n in graph.nodes.values()
               if isinstance(n, nir.Flatten) and n.input_type.get("input") is None]
    if not untyped:
        return graph
    graph = copy.deepcopy(graph)
    graph.infer_types()
    return graph


def write_graph(graph: nir.NIRGraph, path: str | Path) -> Path:
    """``nir.write`` ``graph`` to ``path``. Flatten nodes without an input type get one
    (nir's type inference); in a ``sinabs``-dialect graph the IF nodes' v_reset fields
    are dropped (nir <= 1.0.4 refuses them; later versions read 0)."""
    graph = _typed_flattens(graph)
    dialect = load_meta(graph, "graph").get("dialect", NirDialect.NIR.value)

    def write(tmp: Path) -> None:
        nir.write(tmp, graph)
        if not convention(dialect).v_reset_field:
            with h5py.File(tmp, "r+") as f:
                nodes = f["node"]["nodes"]
                for name, node in graph.nodes.items():
                    if isinstance(node, nir.IF):
                        del nodes[name]["v_reset"]

    return atomic_write(path, write)


def write_nir(
    model: SpikingModel, path: str | Path, approximate: bool = False,
    dialect: NirDialect | str = NirDialect.NIR,
) -> Path:
    """Export ``model`` (see :func:`export_nir`) and write it (see :func:`write_graph`)."""
    return write_graph(export_nir(model, approximate, dialect), path)
