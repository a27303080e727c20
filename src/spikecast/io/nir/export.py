"""Export a rate-coded spikecast model to a NIR graph (Neuromorphic Intermediate Representation).

The graph is Input -> (Affine | Linear | Conv2d | AvgPool2d | Flatten | Scale)* with an
``IF`` node for every neuron population (a ReLU, and the output) -> Output, on a discrete
grid with dt = 1 (one NIR time unit per simulation step). Networks the simulator
(:mod:`spikecast.schemes.rate.sim`) rejects are rejected alike. How its semantics map onto NIR:

* Threshold. spikecast fires when v >= theta; NIR's IF fires when v > v_threshold
  (strict). The exported v_threshold is the largest float32 below theta,
  ``np.nextafter(float32(theta), -inf)``: for float32 membranes, v > v_threshold iff
  v >= theta, exactly. r = 1 (v <- v + I per step) and v_reset = 0.
* Reset. NIR's IF sets v <- v_reset after a spike, which is spikecast's ``reset='zero'``.
  Reset by subtraction (v <- v - theta, the default) has no NIR equivalent: export refuses
  it unless ``approximate=True``, which writes reset-to-zero and lists the change.
* Charge. A spikecast spike carries the charge theta into the next synaptic layer
  (I = W (theta s) + b); a NIR spike is 1, so the next layer's weights are multiplied by
  theta, W' = theta W (exact in real arithmetic; bit-exact when theta is a power of two,
  e.g. the default 1, where the multiplication is skipped). Average pools have no weights:
  a ``Scale(theta)`` node precedes them when theta != 1. Biases are not scaled: NIR's
  Affine bias is a constant current, added every step, as in spikecast.
* Initial state. NIR's IF starts at v = 0: a recipe with ``v_init`` > 0 is refused unless
  ``approximate=True``, which writes v(0) = 0 and lists the change.
* Input. The Input node has the per-sample shape; under ``constant`` coding the analog x
  is fed every step, under ``poisson`` coding unit spikes are (recorded in the metadata).
* Max-pooling. NIR has none; export refuses unless ``approximate=True``, which writes a
  SumPool2d whose metadata records the MaxPool2d (spikecast's importer restores it, so
  round trips through spikecast are exact; other tools see a sum-pool).
* Merges. Several edges into one NIR node are summed: an Add's inputs go straight into
  the Add's IF population (or, for an Add without ReLU, into a ``Scale(1)`` junction),
  each through a ``Scale(w_k charge_k)`` node unless that factor is 1. A synaptic layer
  without ReLU feeding an Add sends its current (charge 1). Concat has no NIR node
  (edges are summed, never concatenated) and is refused.
* Other schemes (sigma-delta, SSNN) are refused: NIR lacks their neuron models.

Graph metadata ``{"spikecast": JSON}`` records format, dt = 1, the threshold rule, the
rate recipe's parameters and the list of approximations; per-node metadata records a
Conv2d without bias, a replaced MaxPool2d and whether an IF population had a ReLU.
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np

from spikecast.io.nir.mappers import EXPORTERS, ExportContext, dump_meta
from spikecast.ir.graph import INPUT, Add, Network, ReLU, Stage
from spikecast.schemes.base import SpikingModel
from spikecast.schemes.rate import RateModel
from spikecast.schemes.rate.neuron import Reset
from spikecast.schemes.rate.sim import signal_kinds

FORMAT = "spikecast-nir"
VERSION = 1
THRESHOLD_RULE = "v > v_threshold with v_threshold = nextafter(float32(theta), -inf)"

REFUSALS = {
    "sigma-delta": "NIR has no sigma-delta neuron (hysteresis quantizer emitting signed "
    "spikes) and no signed spikes",
    "ssnn": "NIR has no SSNN circuit model (PWM input coding, membrane floor at 0, "
    "current-mode synapses)",
}


def nir_threshold(theta: float) -> np.float32:
    """The largest float32 below theta: NIR's strict v > v_thr equals spikecast's v >= theta."""
    return np.nextafter(np.float32(theta), np.float32(-np.inf))


def _relu_names(net: Network) -> dict[int, str]:
    """Layer index of each synaptic layer read by a ReLU -> that ReLU's name."""
    return {
        src[0]: net.names[i]
        for i, (layer, src) in enumerate(zip(net.layers, net.sources, strict=True))
        if isinstance(layer, ReLU)
    }


def _neurons(stage: Stage, v_thr: np.float32) -> nir.IF:
    shape = stage.out_shape
    return nir.IF(
        r=np.ones(shape, dtype=np.float32),
        v_threshold=np.full(shape, v_thr, dtype=np.float32),
        v_reset=np.zeros(shape, dtype=np.float32),
        metadata=dump_meta({"relu": stage.relu}),
    )


def _check_model(model: SpikingModel, ctx: ExportContext) -> RateModel:
    if not isinstance(model, RateModel):
        scheme = getattr(model, "scheme", type(model).__name__)
        reason = REFUSALS.get(scheme, "NIR export is implemented for rate-coded models only")
        raise ValueError(
            f"cannot export a {scheme!r} model to NIR: {reason}; only rate-coded models "
            "(scheme 'rate', IF neurons) map onto NIR"
        )
    if model.recipe.reset is Reset.SUBTRACT:
        if not ctx.approximate:
            raise ValueError(
                "NIR's IF neuron resets to v_reset after a spike; it cannot express reset by "
                "subtraction (v <- v - theta). Convert with reset='zero', or export with "
                "approximate=True (--approximate) to write reset-to-zero (recorded in the "
                "graph metadata)"
            )
        ctx.approximations.append(
            "reset by subtraction (v <- v - theta) written as reset to zero (v <- 0); "
            "restored by spikecast"
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


class _Writer:
    """Accumulates uniquely named nodes and the edges into them."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.nodes: dict[str, nir.NIRNode] = {"input": nir.Input(np.array(input_shape))}
        self.edges: list[tuple[str, str]] = []

    def add(self, name: str, node: nir.NIRNode, sources: list[str]) -> str:
        unique, k = name, 1
        while unique in self.nodes or unique == "output":
            unique, k = f"{name}_{k}", k + 1
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


def export_nir(model: SpikingModel, approximate: bool = False) -> nir.NIRGraph:
    """The NIR graph of a rate-coded ``model`` (see the module docstring for the mapping).

    ``approximate=True`` replaces what NIR cannot express (reset by subtraction,
    max-pooling) by its nearest NIR form and lists each change in
    ``graph.metadata["spikecast"]``; without it those models raise ``ValueError``.
    """
    ctx = ExportContext(approximate)
    model = _check_model(model, ctx)
    net, theta = model.network, model.recipe.threshold
    v_thr = nir_threshold(theta)
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
            sources = [w.add(name, _neurons(stage, v_thr), sources)]
            charge[stage.index] = theta
        out[stage.index] = sources[0]
    last = out[stages[-1].index]
    w.nodes["output"] = nir.Output(np.array(w.nodes[last].output_type["output"]))
    w.edges.append((last, "output"))
    meta = {
        "format": FORMAT, "version": VERSION, "dt": 1.0, "threshold_rule": THRESHOLD_RULE,
        "recipe": model.recipe.params(), "approximations": ctx.approximations,
    }
    return nir.NIRGraph(w.nodes, w.edges, metadata=dump_meta(meta))


def write_nir(model: SpikingModel, path: str | Path, approximate: bool = False) -> Path:
    """Export ``model`` (see :func:`export_nir`) and write it with ``nir.write``."""
    path = Path(path)
    graph = export_nir(model, approximate)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(path, graph)
    return path
