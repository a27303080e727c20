"""From a normalized layer graph to the SSNN circuit: dense layers, input mapping, currents.

Every synaptic layer becomes a dense matrix W (n_out, n_in) of normalized weights; layer l's
synapse j<-i carries the current I_ji = W_ji i_unit_l while source i is high, so the
membrane slope is W_ji i_unit_l / C (V/s). A bias b_j becomes a constant current source.

Activity scale: a PWM input is high for a fraction ``duty`` of the time; a neuron firing at
rate r is high for r x spike_width. With k_l = i_unit_l / (C V_th) a neuron of layer l fires
at r = k_l G_{l-1} z (z its normalized ANN pre-activation, G_0 = 1) and passes on the
activity G_l z with G_l = k_l spike_width G_{l-1}; a bias is therefore driven with the
current b i_unit_l G_{l-1} so it keeps its weight relative to the synaptic inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch

from spikecast.ir.graph import AvgPool2d, Conv2d, Flatten, Linear, Network
from spikecast.schemes.base import UnsupportedGraph
from spikecast.schemes.ssnn.circuit import CircuitParams

MAX_DENSE_ENTRIES = 50_000_000
MIN_THRESHOLD_FACTOR = 0.01  # a mismatched threshold never drops below 1 % of nominal


class InputMapping(str, Enum):
    """How the ANN's inputs relate to the PWM duty the circuit sees.

    - ``fold``: the ANN was trained on x in [0, 1]; the encoder's affine map
      duty = offset + gain x is undone inside layer 1 (W <- W / gain,
      b <- b - W offset / gain, a constant bias current), so any [0, 1]-trained ANN works.
    - ``voltage``: the ANN was trained on the duty itself (offset + gain x, the paper's
      Table I "Normalization 0.2~1"); layer 1 is used as is.
    """

    FOLD = "fold"
    VOLTAGE = "voltage"


@dataclass(frozen=True)
class DenseLayer:
    """y = W x + b with W (n_out, n_in), float64; ``name`` is the graph layer's name."""

    name: str
    weight: torch.Tensor
    bias: torch.Tensor


def dense_layers(net: Network) -> list[DenseLayer]:
    """The synaptic stages of ``net`` as dense matrices (Conv2d/AvgPool2d are unrolled).

    Every hidden stage must be followed by a ReLU; MaxPool2d cannot be built from
    current-mode IF neurons and is refused.
    """
    if not net.is_chain:
        merges = [n for n, layer in zip(net.names, net.layers, strict=True)
                  if type(layer).__name__ in ("Add", "Concat")]
        raise UnsupportedGraph(
            f"layers {merges}: the SSNN circuit is a chain of layers; branched networks "
            "(residual Add, Concat) are supported by the rate and sigma-delta schemes"
        )
    layers: list[DenseLayer] = []
    stages = net.stages()
    synaptic = [s for s in stages if s.synaptic]
    for s in stages:
        if isinstance(s.layer, Flatten):
            continue
        if not s.synaptic:
            raise UnsupportedGraph(
                f"layer {s.name!r}: {type(s.layer).__name__} is not supported by the SSNN "
                "scheme (supported: Linear, Conv2d, AvgPool2d, Flatten, ReLU)"
            )
        if not s.relu and s is not synaptic[-1]:
            raise UnsupportedGraph(f"layer {s.name!r}: every hidden layer needs a ReLU after it")
        layers.append(_dense(s.name, s.layer, s.in_shape, s.out_shape))
    return layers


def _dense(name: str, layer, in_shape, out_shape) -> DenseLayer:
    n_in, n_out = math.prod(in_shape), math.prod(out_shape)
    if isinstance(layer, Linear):
        w = layer.weight.double()
        b = layer.bias
        bias = torch.zeros(n_out, dtype=torch.float64) if b is None else b.double()
        return DenseLayer(name, w, bias)
    if n_in * n_out > MAX_DENSE_ENTRIES:
        raise UnsupportedGraph(
            f"layer {name!r}: unrolling {type(layer).__name__} to a {n_out}x{n_in} matrix "
            f"exceeds {MAX_DENSE_ENTRIES} synapses"
        )
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *in_shape)
    if isinstance(layer, Conv2d):
        conv = Conv2d(layer.weight.double(), None, layer.stride, layer.padding, layer.groups)
        w = conv.forward(basis).reshape(n_in, n_out).T.contiguous()
        bias = torch.zeros(out_shape, dtype=torch.float64)
        if layer.bias is not None:
            bias = bias + layer.bias.double().reshape(-1, 1, 1)
        return DenseLayer(name, w, bias.flatten())
    if isinstance(layer, AvgPool2d):
        w = layer.forward(basis).reshape(n_in, n_out).T.contiguous()
        return DenseLayer(name, w, torch.zeros(n_out, dtype=torch.float64))
    raise ValueError(f"layer {name!r}: {type(layer).__name__} has no dense form")


def apply_input_mapping(
    layers: list[DenseLayer], mapping: InputMapping, offset: float, gain: float
) -> list[DenseLayer]:
    """Fold duty = offset + gain x into layer 1 (``fold``) or leave the layers (``voltage``)."""
    if mapping is InputMapping.VOLTAGE:
        return layers
    first = layers[0]
    w = first.weight / gain
    bias = first.bias - offset * w.sum(1)
    return [DenseLayer(first.name, w, bias), *layers[1:]]


def forward_dense(layers: list[DenseLayer], duty: torch.Tensor) -> list[torch.Tensor]:
    """Normalized pre-activations z_l of every layer for inputs ``duty`` (B, n_in)."""
    outs = []
    x = duty.double()
    for i, layer in enumerate(layers):
        z = x @ layer.weight.T + layer.bias
        outs.append(z)
        x = torch.relu(z) if i < len(layers) - 1 else z
    return outs


def calibrate_i_unit(
    layers: list[DenseLayer], params: CircuitParams, rate_target: float,
    calib_duty: torch.Tensor | None, percentile: float = 100.0,
    output_rate_target: float | None = None,
) -> tuple[float, ...]:
    """One current scale per layer so that layer's busiest neuron fires at
    ``rate_target`` x max_rate (``output_rate_target`` for the output layer, default the
    same) in the ideal (no-refractory) rate model.

    peak_l = the ``percentile`` of the positive relu(z_l) over calibration samples and
    neurons (100 = the maximum; without data the model-based bound 1, which no input can
    exceed); then k_l = rate_target max_rate / (G_{l-1} peak_l), i_unit_l = k_l C V_th and
    G_l = k_l spike_width G_{l-1}. Neurons above the peak saturate at the max rate.
    """
    targets = [rate_target] * (len(layers) - 1)
    targets.append(rate_target if output_rate_target is None else output_rate_target)
    for target in targets:
        if not 0 < target <= 1:
            raise ValueError(f"rate targets must be in (0, 1] (fraction of max rate), got {target}")
    if not 0 < percentile <= 100:
        raise ValueError(f"calibration percentile must be in (0, 100], got {percentile}")
    if calib_duty is None:
        peaks = [1.0] * len(layers)
    else:
        peaks = [_peak(z, percentile) for z in forward_dense(layers, calib_duty)]
    units, gain = [], 1.0
    for peak, target in zip(peaks, targets, strict=True):
        k = target * params.max_rate / (gain * peak)
        units.append(k * params.c_mem * params.v_th)
        gain *= k * params.spike_width
    return tuple(units)


def _peak(z: torch.Tensor, percentile: float) -> float:
    positive = z[z > 0]
    if positive.numel() == 0:
        return 1.0
    return float(torch.quantile(positive[:: -(-positive.numel() // 10_000_000)], percentile / 100))


def activity_gains(params: CircuitParams, i_unit: tuple[float, ...]) -> list[float]:
    """G_{l-1} for every layer l: the activity scale of its inputs (G_0 = 1)."""
    gains, g = [], 1.0
    for unit in i_unit:
        gains.append(g)
        g *= unit / (params.c_mem * params.v_th) * params.spike_width
    return gains


@dataclass(frozen=True, eq=False)
class CircuitNetwork:
    """The circuit ready to simulate: membrane slopes (V/s) per high input ``weights[l]``
    (n_out, n_in), constant bias slopes ``biases[l]``, thresholds ``v_th[l]`` (V), with
    device mismatch already drawn; ``i_unit`` is the current scale of each layer (A)."""

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]
    v_th: tuple[torch.Tensor, ...]
    i_unit: tuple[float, ...]
    params: CircuitParams
    names: tuple[str, ...]

    @property
    def n_inputs(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(w.shape[0]) for w in self.weights)


def build_circuit(
    layers: list[DenseLayer], params: CircuitParams, i_unit: tuple[float, ...]
) -> CircuitNetwork:
    """Currents, bias sources and thresholds, with Gaussian mismatch of sigma
    ``params.mismatch_pct`` % on every synapse current and threshold (seeded)."""
    if len(i_unit) != len(layers):
        raise ValueError(f"i_unit has {len(i_unit)} values for {len(layers)} synaptic layers")
    gen = torch.Generator().manual_seed(params.mismatch_seed)
    sigma = params.mismatch_pct / 100.0

    def vary(shape: torch.Size, floor: float) -> torch.Tensor:
        if sigma == 0:
            return torch.ones(shape, dtype=torch.float64)
        noise = torch.randn(shape, generator=gen, dtype=torch.float64)
        return torch.clamp(1.0 + sigma * noise, min=floor)

    weights, biases, thresholds = [], [], []
    for layer, unit, g in zip(layers, i_unit, activity_gains(params, i_unit), strict=True):
        scale = unit / params.c_mem
        weights.append(layer.weight * scale * vary(layer.weight.shape, 0.0))
        biases.append(layer.bias * scale * g)
        thresholds.append(params.v_th * vary(layer.bias.shape, MIN_THRESHOLD_FACTOR))
    return CircuitNetwork(
        tuple(weights), tuple(biases), tuple(thresholds), tuple(i_unit), params,
        tuple(layer.name for layer in layers),
    )
