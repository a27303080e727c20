"""Per-type translations of spikecast layer records into NIR nodes, in the forms that the
most readers load (snnTorch 1.0.0, norse 1.1.0 and sinabs 3.1.3 all read Affine, Conv2d
and Flatten; none reads Linear, AvgPool2d and SumPool2d alike):

* Linear -> Affine (a zero bias when there is none; ``{"bias": false}`` in the metadata);
* AvgPool2d -> the equivalent Conv2d, a (C, C, kh, kw) weight of charge / (kh kw) on the
  channel diagonal and no bias (metadata ``{"layer": "AvgPool2d", ...}``: spikecast reads
  the pool back). Depthwise weights (groups = C) would be smaller, but those three
  importers build ``nn.Conv2d(weight.shape[1], ...)`` and reject them;
* MaxPool2d (only with ``approximate``) -> the sum-pool Conv2d, ones on the diagonal, with
  the max-pool in the metadata;
* a grouped Conv2d -> its dense block-diagonal equivalent (nir 1.0.8 types a Conv2d's input
  as weight.shape[1] channels, so grouped weights fail its type check on read, and the three
  peer importers reject them too); ``{"groups": g}`` in the metadata restores the groups;
* Flatten -> ``Flatten(start_dim=-ndim, end_dim=-1)``: NIR shapes exclude the batch, but the
  readers hand start_dim and end_dim to ``torch.nn.Flatten`` on batched tensors; negative
  dimensions flatten one sample under both readings.

``EXPORTERS`` maps a layer type to a function ``(stage, charge, ctx) -> [(suffix, node)]``;
``charge`` is what one unit of the incoming signal carries in spikecast (1 for the network
input, theta for spikes of an IF population), which NIR's unit spikes must be scaled by.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import nir
import numpy as np
import torch

from spikecast.io.nir.meta import dump_meta
from spikecast.ir.graph import AvgPool2d, Concat, Conv2d, Flatten, Linear, MaxPool2d, Stage


@dataclass
class ExportContext:
    """Export options and the list of approximations made so far."""

    approximate: bool
    approximations: list[str] = field(default_factory=list)


def _f32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy().copy()


def _charged(weight: torch.Tensor, charge: float) -> np.ndarray:
    """W theta: a NIR spike is 1 where a spikecast spike carries ``charge`` (skipped for 1,
    so theta = 1 leaves the weights bit-identical)."""
    return _f32(weight if charge == 1.0 else weight * charge)


def _export_linear(stage: Stage, charge: float, ctx: ExportContext) -> list:
    layer: Linear = stage.layer
    w = _charged(layer.weight, charge)
    if layer.bias is None:
        bias = np.zeros(w.shape[0], dtype=np.float32)
        return [("", nir.Affine(weight=w, bias=bias, metadata=dump_meta({"bias": False})))]
    return [("", nir.Affine(weight=w, bias=_f32(layer.bias)))]


def _conv_node(stage: Stage, weight: np.ndarray, bias: np.ndarray | None, stride, padding,
               groups: int, meta: dict) -> nir.Conv2d:
    return nir.Conv2d(
        input_shape=tuple(stage.in_shape[1:]), weight=weight, stride=tuple(stride),
        padding=tuple(padding), dilation=(1, 1), groups=groups,
        bias=bias if bias is not None else np.zeros(weight.shape[0], dtype=np.float32),
        metadata=dump_meta(meta),
    )


def block_diagonal(weight: np.ndarray, groups: int) -> np.ndarray:
    """The dense (out, in, kh, kw) weight of a grouped (out, in / groups, kh, kw) one."""
    out, per_in = weight.shape[:2]
    per_out = out // groups
    dense = np.zeros((out, per_in * groups, *weight.shape[2:]), dtype=weight.dtype)
    for g in range(groups):
        rows = slice(g * per_out, (g + 1) * per_out)
        dense[rows, g * per_in:(g + 1) * per_in] = weight[rows]
    return dense


def _export_conv(stage: Stage, charge: float, ctx: ExportContext) -> list:
    layer: Conv2d = stage.layer
    bias = None if layer.bias is None else _f32(layer.bias)
    meta = {"bias": layer.bias is not None}
    weight = _charged(layer.weight, charge)
    if layer.groups > 1:
        weight, meta["groups"] = block_diagonal(weight, layer.groups), layer.groups
    node = _conv_node(stage, weight, bias, layer.stride, layer.padding, 1, meta)
    return [("", node)]


def _pool_spec(layer: AvgPool2d | MaxPool2d) -> dict:
    return {"layer": type(layer).__name__, "kernel_size": list(layer.kernel_size),
            "stride": list(layer.stride), "padding": list(layer.padding)}


def _diagonal(channels: int, kernel: tuple[int, int], value: float) -> np.ndarray:
    w = np.zeros((channels, channels, *kernel), dtype=np.float32)
    idx = np.arange(channels)
    w[idx, idx] = np.float32(value)
    return w


def _export_avgpool(stage: Stage, charge: float, ctx: ExportContext) -> list:
    """mean over a window of charge-carrying spikes = sum of unit spikes x charge / (kh kw)."""
    layer: AvgPool2d = stage.layer
    kh, kw = layer.kernel_size
    w = _diagonal(stage.in_shape[0], layer.kernel_size, charge / (kh * kw))
    return [("", _conv_node(stage, w, None, layer.stride, layer.padding, 1, _pool_spec(layer)))]


def _export_maxpool(stage: Stage, charge: float, ctx: ExportContext) -> list:
    layer: MaxPool2d = stage.layer
    if not ctx.approximate:
        raise ValueError(
            f"layer {stage.name!r}: NIR has no max-pooling node (spikecast gates spike trains "
            "by spike count); remove the max-pool or export with approximate=True "
            "(--approximate), which writes a sum-pool that spikecast restores on import"
        )
    ctx.approximations.append(
        f"{stage.name}: spike-count gated MaxPool2d written as a sum-pool (a Conv2d of ones "
        "on the channel diagonal; restored by spikecast)"
    )
    w = _diagonal(stage.in_shape[0], layer.kernel_size, 1.0)
    return [("", _conv_node(stage, w, None, layer.stride, layer.padding, 1, _pool_spec(layer)))]


def _export_flatten(stage: Stage, charge: float, ctx: ExportContext) -> list:
    ndim = len(stage.in_shape)
    return [("", nir.Flatten(input_type=np.array(stage.in_shape), start_dim=-ndim, end_dim=-1))]


def _refuse_concat(stage: Stage, charge: float, ctx: ExportContext) -> list:
    raise ValueError(
        f"layer {stage.name!r}: NIR has no concatenation node (several edges into one node "
        "are summed); networks with Concat cannot be exported"
    )


EXPORTERS: dict[type, Callable[[Stage, float, ExportContext], list]] = {
    Linear: _export_linear,
    Conv2d: _export_conv,
    AvgPool2d: _export_avgpool,
    MaxPool2d: _export_maxpool,
    Flatten: _export_flatten,
    Concat: _refuse_concat,
}
