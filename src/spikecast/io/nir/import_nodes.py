"""Per-type translations of NIR nodes into spikecast layer records.

``IMPORTERS`` maps a NIR node type to a function ``(name, node, builder)`` that feeds a
builder (:class:`spikecast.io.nir.import_chain.Builder` or
:class:`spikecast.io.nir.import_dag.DagBuilder`); ``builder.convention``
(:mod:`spikecast.io.nir.dialect`) says how neuron nodes are read: the grid dt, the threshold
rule and the reset. Conv2d nodes that spikecast wrote for a pool (metadata ``layer``) are
read back as that pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nir
import numpy as np
import torch

from spikecast.io.nir.dialect import unit_gain
from spikecast.io.nir.meta import load_meta
from spikecast.ir.graph import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d
from spikecast.schemes.rate.neuron import Reset

NONE = type(None)
LEAK_FREE = 2.0**-25
"""The largest leak per step dt / tau for which 1 - dt / tau rounds to 1 in float32."""


def _tensor(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float32)))


def _ints(v: Any, where: str, what: str) -> tuple[int, int]:
    arr = np.asarray(v).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(arr == np.round(arr)):
        raise ValueError(f"{where}: {what} must be one or two integers, got {v!r}")
    return int(arr[0]), int(arr[1])


def _matrix(name: str, node: nir.NIRNode) -> np.ndarray:
    w = np.asarray(node.weight)
    if w.ndim != 2:
        raise ValueError(f"node {name!r}: {type(node).__name__} weight must be 2-D, got "
                         f"shape {w.shape}")
    return w


def _import_affine(name: str, node: nir.Affine, b: Any) -> None:
    w = _matrix(name, node)
    has_bias = load_meta(node, f"node {name!r}").get("bias", True)
    bias = _tensor(node.bias).reshape(-1) if has_bias else None
    b.synaptic(name, Linear(_tensor(w), bias))


def _import_linear(name: str, node: nir.Linear, b: Any) -> None:
    b.synaptic(name, Linear(_tensor(_matrix(name, node))))


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


def _pool_from_conv(name: str, node: nir.Conv2d, spec: dict[str, Any], b: Any) -> None:
    """A Conv2d that spikecast wrote for a pool: a constant c on the channel diagonal. An
    AvgPool2d's c is charge / (kh kw), so its input is scaled by c kh kw; a max-pool's
    sum-pool has c = 1 and routes spikes."""
    where = f"node {name!r}"
    kernel = _ints(spec.get("kernel_size"), where, "kernel_size")
    stride = _ints(spec.get("stride"), where, "stride")
    padding = _ints(spec.get("padding"), where, "padding")
    w = np.asarray(node.weight, dtype=np.float32)
    c = w.flat[0]
    diagonal = np.zeros_like(w)
    idx = np.arange(w.shape[0])
    diagonal[idx, idx] = c
    if w.shape[0] != w.shape[1] or w.shape[2:] != kernel or not np.array_equal(w, diagonal):
        raise ValueError(f"{where}: metadata says {spec['layer']}, but the weight is not a "
                         f"constant on the channel diagonal of kernel {kernel}")
    if spec["layer"] == "MaxPool2d":
        b.route(name, MaxPool2d(kernel, stride, padding))
        return
    b.synaptic(name, AvgPool2d(kernel, stride, padding),
               in_scale=float(np.float64(c) * kernel[0] * kernel[1]))


def _import_conv(name: str, node: nir.Conv2d, b: Any) -> None:
    where = f"node {name!r}"
    meta = load_meta(node, where)
    if meta.get("layer") in ("AvgPool2d", "MaxPool2d"):
        _pool_from_conv(name, node, meta, b)
        return
    if _ints(node.dilation, where, "dilation") != (1, 1):
        raise ValueError(f"{where}: Conv2d with dilation {node.dilation}; spikecast "
                         "supports dilation 1")
    bias = _tensor(node.bias).reshape(-1) if meta.get("bias", True) else None
    stride = _ints(node.stride, where, "stride")
    groups = int(np.asarray(node.groups))
    weight = np.asarray(node.weight, dtype=np.float32)
    if groups == 1 and int(meta.get("groups", 1)) > 1:
        groups = int(meta["groups"])
        weight = _grouped(where, weight, groups)
    b.synaptic(name, Conv2d(_tensor(weight), bias, stride, _conv_padding(name, node), groups))


def _grouped(where: str, dense: np.ndarray, groups: int) -> np.ndarray:
    """The grouped weight that spikecast wrote as its dense block-diagonal form."""
    out, c_in = dense.shape[:2]
    if out % groups or c_in % groups:
        raise ValueError(f"{where}: metadata says groups={groups}, which does not divide the "
                         f"weight's {out} outputs and {c_in} inputs")
    per_out, per_in = out // groups, c_in // groups
    blocks = [dense[g * per_out:(g + 1) * per_out, g * per_in:(g + 1) * per_in]
              for g in range(groups)]
    grouped = np.concatenate(blocks, axis=0)
    if np.count_nonzero(dense) != np.count_nonzero(grouped):
        raise ValueError(f"{where}: metadata says groups={groups}, but the weight has "
                         "connections outside the diagonal blocks")
    return grouped


def _pool_args(name: str, node: nir.NIRNode) -> tuple[tuple[int, int], ...]:
    where = f"node {name!r}"
    return tuple(
        _ints(getattr(node, k), where, k) for k in ("kernel_size", "stride", "padding")
    )


def _import_avgpool(name: str, node: nir.AvgPool2d, b: Any) -> None:
    b.synaptic(name, AvgPool2d(*_pool_args(name, node)))


def _import_sumpool(name: str, node: nir.SumPool2d, b: Any) -> None:
    """A SumPool2d that spikecast (format 1) wrote for a max-pool becomes that MaxPool2d
    again; any other is the exact Conv2d with a (C, C, kh, kw) weight of ones on the
    channel diagonal (zero padding adds nothing to a sum)."""
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


def _import_flatten(name: str, node: nir.Flatten, b: Any) -> None:
    """Flatten of a whole sample: NIR shapes exclude the batch, so start_dim 0 (or -ndim)
    with end_dim -1 (or ndim - 1); start_dim 1 with end_dim -1 is read as the
    batch-inclusive torch convention that several exporters write."""
    start, end, ndim = int(node.start_dim), int(node.end_dim), len(b.shape)
    whole = start in (0, -ndim) and end in (-1, ndim - 1)
    torch_style = start == 1 and end == -1
    if not (whole or torch_style or ndim == 1):
        raise ValueError(
            f"node {name!r}: Flatten(start_dim={start}, end_dim={end}) of shape {b.shape} "
            "keeps several axes; spikecast flattens a whole sample only"
        )
    b.route(name, Flatten())


def _import_scale(name: str, node: nir.Scale, b: Any) -> None:
    b.scale(name, np.asarray(node.scale, dtype=np.float32))


def _check_reset(name: str, node: nir.NIRNode, b: Any) -> None:
    """Reset to v_reset needs v_reset = 0; a reader that resets by subtraction (sinabs)
    ignores v_reset."""
    if b.convention.reset is not Reset.ZERO:
        return
    reset = np.asarray(node.v_reset, dtype=np.float64)
    if np.any(reset != 0):
        raise ValueError(
            f"node {name!r}: v_reset {float(np.abs(reset).max()):.6g} != 0; spikecast IF "
            "neurons reset to 0"
        )


def _import_if(name: str, node: nir.IF, b: Any) -> None:
    """dv/dt = R I on the grid dt: v <- v + r dt I, fire on the dialect's threshold rule."""
    _check_reset(name, node, b)
    gain = unit_gain(np.asarray(node.r, np.float64) * b.convention.dt)
    b.population(name, b.convention.theta(node.v_threshold), gain,
                 load_meta(node, f"node {name!r}"))


def _leak_free_gain(name: str, tau: Any, r: Any, dt: float, what: str) -> np.ndarray:
    """tau dv/dt = (v_leak - v) + R I on the grid dt: v <- (1 - dt / tau) v + (r dt / tau) I.
    Leak-free means 1 - dt / tau rounds to 1 in float32; the gain r dt / tau is then finite
    only when r grows with tau, as in the discretising exporters' r = tau / dt (snnTorch
    writes tau = r = inf for beta = 1: gain 1)."""
    tau, r = np.asarray(tau, np.float64), np.asarray(r, np.float64)
    leak = dt / tau
    if np.any(leak > LEAK_FREE) or np.any(tau <= 0):
        raise ValueError(
            f"node {name!r}: {what} leaks (dt / tau up to {float(np.max(leak)):.6g} per "
            f"step at dt = {dt:g}); spikecast imports leak-free neurons only (IF, or tau = inf)"
        )
    both_inf = np.isposinf(tau) & np.isposinf(r)
    with np.errstate(invalid="ignore"):
        gain = np.where(both_inf, 1.0, r * dt / tau)
    if not np.all(np.isfinite(gain) & (gain > 0)):
        raise ValueError(
            f"node {name!r}: {what} with tau = inf and finite r never integrates its input "
            "(gain r dt / tau = 0); a leak-free LIF needs r = tau / dt"
        )
    return unit_gain(gain)


def _import_lif(name: str, node: nir.LIF, b: Any) -> None:
    _check_reset(name, node, b)
    gain = _leak_free_gain(name, node.tau, node.r, b.convention.dt, "LIF")
    b.population(name, b.convention.theta(node.v_threshold), gain,
                 load_meta(node, f"node {name!r}"))


def _import_cuba_lif(name: str, node: nir.CubaLIF, b: Any) -> None:
    """Leak-free membrane (as LIF) and a synapse that passes its input within the step:
    tau_syn dI/dt = -I + w_in S on the grid dt is I <- I + (w_in S - I) dt / tau_syn,
    which is I = S only for tau_syn = dt and w_in = 1."""
    _check_reset(name, node, b)
    dt = b.convention.dt
    gain = _leak_free_gain(name, node.tau_mem, node.r, dt, "CubaLIF")
    for what, values, want in (("tau_syn", node.tau_syn, dt), ("w_in", node.w_in, 1.0)):
        values = np.asarray(values, np.float64)
        if np.any(values != want):
            raise ValueError(
                f"node {name!r}: CubaLIF synapse with {what} up to "
                f"{float(np.abs(values).max()):.6g}; spikecast needs tau_syn = dt = {dt:g} "
                "and w_in = 1 (a synapse that passes its input within the step)"
            )
    b.population(name, b.convention.theta(node.v_threshold), gain,
                 load_meta(node, f"node {name!r}"))


def _import_missing(name: str, node: None, b: Any) -> None:
    """norse's ``to_nir`` writes None for the modules it does not translate,
    ``torch.nn.Flatten`` among them: on a multi-dimensional signal a None node is read as
    that Flatten (the next node's shape check catches any other module)."""
    if len(b.shape) < 2:
        raise ValueError(
            f"node {name!r} is empty (None): its exporter could not translate that module; "
            f"spikecast reads an empty node as Flatten on a multi-dimensional signal only, "
            f"here of shape {b.shape}"
        )
    b.route(name, Flatten())


IMPORTERS: dict[type, Callable[[str, Any, Any], None]] = {
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
    NONE: _import_missing,
}


def dispatch(name: str, node: nir.NIRNode, builder: Any) -> None:
    """Feed ``node`` to ``builder`` through its importer; unknown types are an error."""
    mapper = IMPORTERS.get(type(node))
    if mapper is None:
        raise ValueError(
            f"node {name!r} has NIR type {type(node).__name__}, which spikecast cannot "
            f"import (supported: {', '.join(t.__name__ for t in IMPORTERS if t is not NONE)})"
        )
    mapper(name, node, builder)


def input_shape(node: nir.Input) -> tuple[int, ...]:
    """Per-sample shape of a NIR Input node."""
    return tuple(int(d) for d in np.asarray(node.input_type["input"]).reshape(-1))
