"""Per-type translations between spikecast layer records and NIR nodes.

``EXPORTERS`` maps a layer type to a function ``(stage, charge, ctx) -> [(suffix, node)]``;
``charge`` is what one unit of the incoming signal carries in spikecast (1 for the network
input, theta for spikes of an IF population), which NIR's unit spikes must be scaled by.
``IMPORTERS`` maps a NIR node type to a function ``(name, node, builder)`` that feeds the
:class:`spikecast.io.nir.import_chain.Builder`. Node metadata written by spikecast is a JSON
string under the key ``"spikecast"`` (HDF5 keeps strings intact, not nested lists).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import nir
import numpy as np
import torch

from spikecast.ir.graph import AvgPool2d, Concat, Conv2d, Flatten, Linear, MaxPool2d, Stage

if TYPE_CHECKING:
    from spikecast.io.nir.import_chain import Builder

META_KEY = "spikecast"


def dump_meta(values: dict[str, Any]) -> dict[str, str]:
    """``{"spikecast": json}``: node or graph metadata that survives nir.write/nir.read."""
    return {META_KEY: json.dumps(values, sort_keys=True)}


def load_meta(node: nir.NIRNode, where: str) -> dict[str, Any]:
    """The spikecast metadata of ``node`` (empty when another tool wrote it)."""
    raw = (getattr(node, "metadata", None) or {}).get(META_KEY)
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode("utf8")
    try:
        values = json.loads(raw)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: unreadable spikecast metadata {raw!r}: {exc}") from exc
    if not isinstance(values, dict):
        raise ValueError(f"{where}: spikecast metadata must be a JSON object, got {raw!r}")
    return values


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


def _pair(v: tuple[int, int]) -> np.ndarray:
    return np.array(v, dtype=np.int64)


def _export_linear(stage: Stage, charge: float, ctx: ExportContext) -> list:
    layer: Linear = stage.layer
    w = _charged(layer.weight, charge)
    if layer.bias is None:
        return [("", nir.Linear(weight=w))]
    return [("", nir.Affine(weight=w, bias=_f32(layer.bias)))]


def _export_conv(stage: Stage, charge: float, ctx: ExportContext) -> list:
    layer: Conv2d = stage.layer
    bias = layer.bias if layer.bias is not None else torch.zeros(layer.weight.shape[0])
    node = nir.Conv2d(
        input_shape=tuple(stage.in_shape[1:]), weight=_charged(layer.weight, charge),
        stride=tuple(layer.stride), padding=tuple(layer.padding), dilation=(1, 1), groups=1,
        bias=_f32(bias), metadata=dump_meta({"bias": layer.bias is not None}),
    )
    return [("", node)]


def _export_avgpool(stage: Stage, charge: float, ctx: ExportContext) -> list:
    layer: AvgPool2d = stage.layer
    pool = nir.AvgPool2d(_pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding))
    if charge == 1.0:
        return [("", pool)]
    scale = nir.Scale(scale=np.full(stage.in_shape, charge, dtype=np.float32))
    return [("_charge", scale), ("", pool)]


def _export_maxpool(stage: Stage, charge: float, ctx: ExportContext) -> list:
    layer: MaxPool2d = stage.layer
    if not ctx.approximate:
        raise ValueError(
            f"layer {stage.name!r}: NIR has no max-pooling node (spikecast gates spike trains "
            "by spike count); remove the max-pool or export with approximate=True "
            "(--approximate), which writes a SumPool2d that spikecast restores on import"
        )
    ctx.approximations.append(
        f"{stage.name}: spike-count gated MaxPool2d written as SumPool2d (restored by spikecast)"
    )
    spec = {
        "layer": "MaxPool2d", "kernel_size": list(layer.kernel_size),
        "stride": list(layer.stride), "padding": list(layer.padding),
    }
    node = nir.SumPool2d(
        _pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding),
        metadata=dump_meta(spec),
    )
    return [("", node)]


def _export_flatten(stage: Stage, charge: float, ctx: ExportContext) -> list:
    return [("", nir.Flatten(input_type=np.array(stage.in_shape), start_dim=0, end_dim=-1))]


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


def _tensor(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float32)))


def _ints(v: Any, where: str, what: str) -> tuple[int, int]:
    arr = np.asarray(v).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(arr == np.round(arr)):
        raise ValueError(f"{where}: {what} must be one or two integers, got {v!r}")
    return int(arr[0]), int(arr[1])


def _import_affine(name: str, node: nir.Affine, b: Builder) -> None:
    w = np.asarray(node.weight)
    if w.ndim != 2:
        raise ValueError(f"node {name!r}: Affine weight must be 2-D, got shape {w.shape}")
    b.synaptic(name, Linear(_tensor(w), _tensor(node.bias).reshape(-1)))


def _import_linear(name: str, node: nir.Linear, b: Builder) -> None:
    w = np.asarray(node.weight)
    if w.ndim != 2:
        raise ValueError(f"node {name!r}: Linear weight must be 2-D, got shape {w.shape}")
    b.synaptic(name, Linear(_tensor(w)))


def _conv_padding(name: str, node: nir.Conv2d) -> tuple[int, int]:
    if isinstance(node.padding, str):
        if node.padding == "valid":
            return 0, 0
        kh, kw = node.weight.shape[2:]
        if kh % 2 == 0 or kw % 2 == 0 or _ints(node.stride, name, "stride") != (1, 1):
            raise ValueError(
                f"node {name!r}: padding 'same' is supported for odd kernels and stride 1 only"
            )
        return (kh - 1) // 2, (kw - 1) // 2
    return _ints(node.padding, f"node {name!r}", "padding")


def _import_conv(name: str, node: nir.Conv2d, b: Builder) -> None:
    where = f"node {name!r}"
    if _ints(node.dilation, where, "dilation") != (1, 1) or int(np.asarray(node.groups)) != 1:
        raise ValueError(
            f"{where}: Conv2d with dilation {node.dilation} and groups {node.groups}; "
            "spikecast supports dilation 1 and groups 1"
        )
    has_bias = load_meta(node, where).get("bias", True)
    bias = _tensor(node.bias).reshape(-1) if has_bias else None
    stride = _ints(node.stride, where, "stride")
    b.synaptic(name, Conv2d(_tensor(node.weight), bias, stride, _conv_padding(name, node)))


def _pool_args(name: str, node: nir.NIRNode) -> tuple[tuple[int, int], ...]:
    where = f"node {name!r}"
    return tuple(
        _ints(getattr(node, k), where, k) for k in ("kernel_size", "stride", "padding")
    )


def _import_avgpool(name: str, node: nir.AvgPool2d, b: Builder) -> None:
    b.synaptic(name, AvgPool2d(*_pool_args(name, node)))


def _import_sumpool(name: str, node: nir.SumPool2d, b: Builder) -> None:
    """A SumPool2d that spikecast wrote for a max-pool becomes that MaxPool2d again; any
    other is the exact Conv2d with a (C, C, kh, kw) weight of ones on the channel diagonal
    (zero padding adds nothing to a sum)."""
    kernel, stride, padding = _pool_args(name, node)
    spec = load_meta(node, f"node {name!r}")
    if spec.get("layer") == "MaxPool2d":
        b.route(name, MaxPool2d(kernel, stride, padding))
        return
    channels = b.shape[0]
    w = torch.zeros(channels, channels, *kernel)
    idx = torch.arange(channels)
    w[idx, idx] = 1.0
    b.synaptic(name, Conv2d(w, None, stride, padding))


def _import_flatten(name: str, node: nir.Flatten, b: Builder) -> None:
    """NIR shapes exclude the batch: start_dim 0, end_dim -1 (or the last axis) flattens a
    sample. start_dim 1 with end_dim -1 is read as the batch-inclusive torch convention
    that several exporters write."""
    start, end, ndim = int(node.start_dim), int(node.end_dim), len(b.shape)
    whole = start == 0 and end in (-1, ndim - 1)
    torch_style = start == 1 and end == -1
    if not (whole or torch_style or ndim == 1):
        raise ValueError(
            f"node {name!r}: Flatten(start_dim={start}, end_dim={end}) of shape {b.shape} "
            "keeps several axes; spikecast flattens a whole sample only"
        )
    b.route(name, Flatten())


def _import_scale(name: str, node: nir.Scale, b: Builder) -> None:
    b.scale(name, np.asarray(node.scale, dtype=np.float32))


def spikecast_threshold(v_threshold: Any) -> np.ndarray:
    """theta_i = the smallest float32 above v_thr_i: for float32 v, v > v_thr iff v >= theta."""
    thr = np.asarray(v_threshold, dtype=np.float32)
    return np.nextafter(thr, np.float32(np.inf))


def _check_reset(name: str, node: nir.NIRNode) -> None:
    reset = np.asarray(node.v_reset, dtype=np.float64)
    if np.any(reset != 0):
        raise ValueError(
            f"node {name!r}: v_reset {float(np.abs(reset).max()):.6g} != 0; spikecast IF "
            "neurons reset to 0"
        )


def _import_if(name: str, node: nir.IF, b: Builder) -> None:
    """dv/dt = R I on the dt = 1 grid: v <- v + r I, fire when v > v_threshold."""
    _check_reset(name, node)
    b.population(name, spikecast_threshold(node.v_threshold), np.asarray(node.r, np.float32),
                 load_meta(node, f"node {name!r}"))


def _leak_free_gain(name: str, tau: Any, r: Any, what: str) -> np.ndarray:
    """A LIF, tau dv/dt = (v_leak - v) + R I, without leak needs tau = inf; its input gain
    r dt / tau is then finite only in the discretising exporters' convention r = tau / dt
    (snntorch), which makes it 1 per step: both tau and r must be infinite."""
    tau, r = np.asarray(tau, np.float64), np.asarray(r, np.float64)
    if not np.all(np.isposinf(tau)):
        leak = float(np.max(1.0 / tau[~np.isposinf(tau)]))
        raise ValueError(
            f"node {name!r}: {what} leaks (1/tau up to {leak:.6g} per time unit); spikecast "
            "imports leak-free neurons only (tau = inf, i.e. IF)"
        )
    if not np.all(np.isposinf(r)):
        raise ValueError(
            f"node {name!r}: {what} with tau = inf and finite r never integrates its input "
            "(gain r dt / tau = 0); a leak-free LIF needs r = tau / dt = inf"
        )
    return np.ones(np.shape(tau), dtype=np.float32)


def _import_lif(name: str, node: nir.LIF, b: Builder) -> None:
    _check_reset(name, node)
    gain = _leak_free_gain(name, node.tau, node.r, "LIF")
    b.population(name, spikecast_threshold(node.v_threshold), gain,
                 load_meta(node, f"node {name!r}"))


def _import_cuba_lif(name: str, node: nir.CubaLIF, b: Builder) -> None:
    """Leak-free membrane (as LIF) and a synapse that passes its input within the step:
    tau_syn dI/dt = -I + w_in S on the dt = 1 grid is I <- I + (w_in S - I) / tau_syn,
    which is I = S only for tau_syn = 1 and w_in = 1."""
    _check_reset(name, node)
    gain = _leak_free_gain(name, node.tau_mem, node.r, "CubaLIF")
    for what, values in (("tau_syn", node.tau_syn), ("w_in", node.w_in)):
        values = np.asarray(values, np.float64)
        if np.any(values != 1):
            raise ValueError(
                f"node {name!r}: CubaLIF synapse with {what} up to "
                f"{float(np.abs(values).max()):.6g}; spikecast needs tau_syn = dt = 1 and "
                "w_in = 1 (a synapse that passes its input within the step)"
            )
    b.population(name, spikecast_threshold(node.v_threshold), gain,
                 load_meta(node, f"node {name!r}"))


IMPORTERS: dict[type, Callable[[str, Any, Builder], None]] = {
    nir.IF: _import_if,
    nir.LIF: _import_lif,
    nir.CubaLIF: _import_cuba_lif,
    nir.Affine: _import_affine,
    nir.Linear: _import_linear,
    nir.Conv2d: _import_conv,
    nir.AvgPool2d: _import_avgpool,
    nir.SumPool2d: _import_sumpool,
    nir.Flatten: _import_flatten,
    nir.Scale: _import_scale,
}


def dispatch(name: str, node: nir.NIRNode, builder: Any) -> None:
    """Feed ``node`` to ``builder`` through its importer; unknown types are an error."""
    mapper = IMPORTERS.get(type(node))
    if mapper is None:
        raise ValueError(
            f"node {name!r} has NIR type {type(node).__name__}, which spikecast cannot "
            f"import (supported: {', '.join(t.__name__ for t in IMPORTERS)})"
        )
    mapper(name, node, builder)


def input_shape(node: nir.Input) -> tuple[int, ...]:
    """Per-sample shape of a NIR Input node."""
    return tuple(int(d) for d in np.asarray(node.input_type["input"]).reshape(-1))
