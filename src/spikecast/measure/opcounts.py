"""NeuroBench-compatible operation counts of one inference, for the ANN and for an SNN.

Definitions (NeuroBench, Yik et al. 2024; all counts per sample):

* a synaptic operation is one (input, weight) product of a synaptic layer whose input and
  weight are both non-zero: ops_l = sum over outputs of (x != 0) * (W != 0), bias excluded;
* it is an *accumulate* (AC) when every input of the layer is a spike in {-1, 0, +1}, else a
  *multiply-accumulate* (MAC): effective MACs / ACs sum the ops of graded / spiking layers;
* dense ops count every connection, zero inputs and zero weights included (connections to
  zero padding excluded), once per pass -- x T for a clocked SNN of T steps;
* activation sparsity = 1 - non-zero activations / all activations over every neuron
  population and time bin (ReLU outputs for the ANN; spikes per neuron and step for an SNN);
* connection sparsity = zero weights / all weights of the synaptic layers;
* footprint = bytes of every weight and bias.

Deviations: NeuroBench only hooks Linear/Conv layers; :class:`~spikecast.ir.graph.AvgPool2d`
is a synaptic layer here (weights 1 / (kh kw)) and is counted like a depthwise convolution.
An SNN's ACs are its synaptic events, which include connections with zero weight (exact for
unpruned networks); a constant analog input is counted once, not once per step.

For an SNN the counts come from the measurement core: a layer's ACs are the synaptic events
(spikes x fan-out) of :class:`~spikecast.measure.result.SchemeResult`; a first layer fed
analog values (``analog_input_macs > 0``, rate coding with constant current) does
nnz(x) x fan-out MACs once per sample (the current is constant over the window).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from spikecast.ir.graph import INPUT, AvgPool2d, Conv2d, Layer, Linear, Network, ReLU
from spikecast.measure.counts import layer_macs, neuron_count
from spikecast.measure.result import SchemeResult


def is_spike_tensor(x: torch.Tensor) -> bool:
    """True when every value of ``x`` is -1, 0 or +1 (NeuroBench's spike test)."""
    return bool(((x == 0) | (x == 1) | (x == -1)).all())


def _binary_ops(layer: Layer, inputs: torch.Tensor, all_ones: bool) -> torch.Tensor:
    """``layer`` on ``inputs`` with every weight replaced by 1 (``all_ones``) or by W != 0."""
    if isinstance(layer, (Linear, Conv2d)):
        mask = torch.ones_like(layer.weight) if all_ones else layer.weight != 0
        weights = mask.to(inputs.dtype)
    if isinstance(layer, Linear):
        return F.linear(inputs, weights)
    if isinstance(layer, Conv2d):
        return F.conv2d(inputs, weights, None, layer.stride, layer.padding, 1, layer.groups)
    if isinstance(layer, AvgPool2d):
        k = math.prod(layer.kernel_size)
        return F.avg_pool2d(inputs, layer.kernel_size, layer.stride, layer.padding) * k
    raise ValueError(
        f"operation counts are defined for Linear, Conv2d and AvgPool2d, not {type(layer).__name__}"
    )


def layer_ops(layer: Layer, x: torch.Tensor) -> torch.Tensor:
    """Per-sample synaptic operations of ``layer`` on batch ``x``: the layer applied to
    (x != 0) with weights (W != 0) and no bias, summed over outputs. Shape (batch,)."""
    out = _binary_ops(layer, (x != 0).to(x.dtype), all_ones=False)
    return out.flatten(1).sum(1).round()


def layer_dense_ops(layer: Layer, in_shape: tuple[int, ...]) -> int:
    """Every connection of ``layer`` (zero weights and inputs included, padding excluded)."""
    return int(_binary_ops(layer, torch.ones(1, *in_shape), all_ones=True).sum().round())


@dataclass(frozen=True)
class LayerOps:
    """Per-sample operations arriving at one synaptic layer."""

    name: str
    effective_macs: float
    effective_acs: float
    dense: float


@dataclass(frozen=True)
class Workload:
    """Per-sample operation counts of one inference (see module docstring).

    ``neuron_updates``: membrane updates (every neuron once per ANN pass or per SNN step;
    one per delivered operation in an event-driven SNN). ``activation_sparsity`` is None
    when the scheme has no time bins to define it.
    """

    effective_macs: float
    effective_acs: float
    dense: float
    neuron_updates: float
    spikes: float
    activation_sparsity: float | None
    layers: tuple[LayerOps, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"layers": [asdict(layer) for layer in self.layers]}


def connection_sparsity(net: Network) -> float:
    """Zero weights / all weights of the Linear and Conv2d layers."""
    weights = [layer.weight for layer in net.layers if isinstance(layer, (Linear, Conv2d))]
    total = sum(w.numel() for w in weights)
    if not total:
        raise ValueError("connection sparsity needs at least one Linear or Conv2d layer")
    return sum(int((w == 0).sum()) for w in weights) / total


def footprint_bytes(net: Network) -> int:
    """Bytes of every weight and bias tensor of ``net`` (NeuroBench footprint)."""
    total = 0
    for layer in net.layers:
        for name in ("weight", "bias"):
            tensor = getattr(layer, name, None)
            if tensor is not None:
                total += tensor.numel() * tensor.element_size()
    return total


def ann_workload(net: Network, x: torch.Tensor, *, batch_size: int = 512) -> Workload:
    """Counts of the ANN ``net`` on samples ``x``: each synaptic layer's ops are MACs unless
    its whole input batch is spikes; activation sparsity over the ReLU outputs."""
    if len(x) == 0:
        raise ValueError("ann_workload needs at least one sample")
    synaptic = [s for s in net.stages() if s.synaptic]
    macs = {s.index: 0.0 for s in synaptic}
    acs = {s.index: 0.0 for s in synaptic}
    zeros, activations = 0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            outs = net.activations(xb)
            for i, (layer, src) in enumerate(zip(net.layers, net.sources, strict=True)):
                if i in macs:
                    h = xb if src[0] == INPUT else outs[src[0]]
                    ops = float(layer_ops(layer, h).sum())
                    (acs if is_spike_tensor(h) else macs)[i] += ops
                if isinstance(layer, ReLU):
                    zeros += int((outs[i] == 0).sum())
                    activations += outs[i].numel()
    n = len(x)
    layers = tuple(
        LayerOps(s.name, macs[s.index] / n, acs[s.index] / n, layer_dense_ops(s.layer, s.in_shape))
        for s in synaptic
    )
    return Workload(
        effective_macs=sum(layer.effective_macs for layer in layers),
        effective_acs=sum(layer.effective_acs for layer in layers),
        dense=sum(layer.dense for layer in layers),
        neuron_updates=float(neuron_count(net)),
        spikes=0.0,
        activation_sparsity=zeros / activations if activations else None,
        layers=layers,
    )


def snn_workload(net: Network, result: SchemeResult, x: torch.Tensor | None = None) -> Workload:
    """Counts of a simulated SNN from its :class:`SchemeResult` (see module docstring).

    ``net`` is the network the scheme simulated; ``x`` the evaluated inputs, used to count
    an analog first layer's MACs as nnz(x) x fan-out (without ``x``: its dense MACs).
    """
    stages = [s for s in net.stages() if s.synaptic or s.population]
    if [s.name for s in stages] != [layer.name for layer in result.layers]:
        raise ValueError(
            f"scheme {result.scheme!r} reports layers {[la.name for la in result.layers]} but "
            f"the network's synaptic layers and populations are {[s.name for s in stages]}"
        )
    bins = result.time_steps
    passes = bins or 1
    analog = _input_fed(net) if result.analog_input_macs > 0 else set()
    acts = None
    if analog and x is not None and len(x):
        with torch.no_grad():
            acts = net.activations(x)
    layers = []
    for stage, stats in zip(stages, result.layers, strict=True):
        macs = 0.0
        if stage.index in analog:
            macs = (
                float(layer_ops(stage.layer, x if stage.sources[0] == INPUT
                                else acts[stage.sources[0]]).mean())
                if acts is not None
                else float(layer_macs(stage.layer, stage.in_shape, stage.out_shape))
            )
        dense = (float(layer_dense_ops(stage.layer, stage.in_shape) * passes) if stage.synaptic
                 else float(math.prod(stage.out_shape) * len(stage.sources) * passes))
        layers.append(LayerOps(stage.name, macs, float(stats.synaptic_events), dense))
    effective_macs = sum(layer.effective_macs for layer in layers)
    effective_acs = sum(layer.effective_acs for layer in layers)
    neurons = result.neurons
    if bins is None:
        updates, sparsity = effective_macs + effective_acs, None
    else:
        updates = float(neurons * bins)
        sparsity = 1.0 - result.spikes / (neurons * bins) if neurons else None
    return Workload(
        effective_macs, effective_acs, sum(layer.dense for layer in layers), updates,
        result.spikes, sparsity, tuple(layers),
    )


def _input_fed(net: Network) -> set[int]:
    """Synaptic stages whose input is a function of the network input only (no neuron
    population on the way): under analog input they compute MACs, not spike events."""
    static = {INPUT}
    fed = set()
    for s in net.stages():
        if all(k in static for k in s.sources):
            if s.synaptic:
                fed.add(s.index)
            if not s.population:
                static.add(s.index)
    return fed
