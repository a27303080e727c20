"""ONNX op converters: each maps one ONNX node onto standard torch modules and functions.

Weights, biases, BatchNorm statistics and Reshape targets must be constants (initializers,
``Constant`` nodes or an ``Identity`` of one); every other input is a tensor computed from
the graph input. Anything outside the supported subset raises ``ValueError`` naming the node.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

if TYPE_CHECKING:
    from spikecast.frontends.onnx.reader import Builder

SUPPORTED_OPS = (
    "Gemm (transA=0), MatMul by a constant (in, out) weight (+ Add of a constant bias), "
    "Conv (2-D, any group, dilations=1, symmetric pads), Relu, MaxPool, AveragePool "
    "(ceil_mode=0, symmetric pads; with pads only count_include_pad=1), GlobalAveragePool, "
    "ReduceMean over (H, W), Flatten (axis=1), Reshape to (batch, -1), BatchNormalization "
    "(inference), Dropout/Identity (dropped), Add of two same-shape tensors, Concat (axis=1), "
    "Sub/Div/Mul/Add of the graph input by constants (folded into the first layer), a final "
    "Softmax/LogSoftmax (dropped), Constant"
)
ADVICE = {
    "Clip": "ReLU6 / clamp has no spiking form (a rate saturates at one spike per step); "
    "replace it by ReLU and retrain or fine-tune",
    "Sigmoid": "no spiking equivalent; use ReLU",
    "Tanh": "no spiking equivalent; use ReLU",
    "LeakyRelu": "negative slopes need signed spikes; use ReLU",
    "PRelu": "negative slopes need signed spikes; use ReLU",
    "Elu": "no spiking equivalent; use ReLU",
    "Gelu": "no spiking equivalent; use ReLU",
    "HardSwish": "no spiking equivalent; use ReLU",
    "Shape": "a shape computation such as x.view(x.size(0), -1): use torch.flatten(x, 1), "
    "or export with a static batch size and constant folding",
    "Gather": "a shape computation such as x.view(x.size(0), -1): use torch.flatten(x, 1), "
    "or export with a static batch size and constant folding",
    "Unsqueeze": "a shape computation such as x.view(x.size(0), -1): use torch.flatten(x, 1), "
    "or export with a static batch size and constant folding",
    "Resize": "upsampling has no spiking form here; use a strided Conv/pooling design",
    "ConvTranspose": "transposed convolutions are not supported; use Conv",
    "LRN": "local response normalization has no spiking form; remove it or use BatchNorm",
    "InstanceNormalization": "depends on the input's statistics; use BatchNorm",
    "LayerNormalization": "depends on the input's statistics; use BatchNorm",
}


@dataclass(frozen=True)
class Value:
    """A tensor of the rebuilt graph: its fx node and its value on a batch-1 example input."""

    node: torch.fx.Node
    example: torch.Tensor


def label(node: onnx.NodeProto) -> str:
    """The node's name, or its first output's name for unnamed nodes (as text even when a
    damaged file holds bytes that are not UTF-8 there)."""
    return str(node.name or (node.output[0] if node.output else node.op_type))


def node_error(node: onnx.NodeProto, detail: str) -> ValueError:
    return ValueError(f"ONNX node {label(node)!r} ({node.op_type}): {detail}")


def unsupported_op(node: onnx.NodeProto) -> ValueError:
    domain = f" of domain {node.domain!r}" if node.domain not in ("", "ai.onnx") else ""
    hint = f" ({ADVICE[node.op_type]})" if node.op_type in ADVICE and not domain else ""
    return ValueError(
        f"ONNX node {label(node)!r}: op {node.op_type!r}{domain} is not supported{hint}. "
        f"Supported: {SUPPORTED_OPS}"
    )


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        out[a.name] = value.decode() if isinstance(value, bytes) else value
    return out


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float32))


def _only_first_output(b: Builder, node: onnx.NodeProto, what: str) -> None:
    for name in node.output[1:]:
        if name and b.uses[name]:
            raise node_error(
                node, f"its {what} output {name!r} is used; only the first output is supported"
            )


def _bias_vector(node: onnx.NodeProto, c: np.ndarray, n: int) -> np.ndarray:
    """A constant bias broadcast to (n,): a scalar, (n,) or (1, n)."""
    c = np.asarray(c, dtype=np.float32)
    if c.size == 1:
        return np.full(n, c.item(), dtype=np.float32)
    if c.shape in ((n,), (1, n)):
        return c.reshape(n)
    raise node_error(node, f"bias of shape {c.shape} does not broadcast to ({n},) per sample")


def _window(
    node: onnx.NodeProto, a: dict[str, Any], x: Value, kernel: tuple[int, ...]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(stride, symmetric padding) of a 2-D conv/pool from strides, pads and auto_pad."""
    if len(kernel) != 2 or x.example.dim() != 4:
        raise node_error(
            node, f"only 2-D windows on (N, C, H, W) inputs are supported, got kernel "
            f"{list(kernel)} on an input of rank {x.example.dim()}"
        )
    stride = tuple(int(s) for s in a.get("strides", (1, 1)))
    if any(d != 1 for d in a.get("dilations", (1, 1))):
        raise node_error(node, f"dilations={list(a['dilations'])}; only 1 is supported")
    if a.get("ceil_mode", 0):
        raise node_error(node, "ceil_mode=1; only ceil_mode=0 is supported")
    auto = a.get("auto_pad", "NOTSET")
    if auto == "VALID":
        return stride, (0, 0)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        padding = []
        for size, k, s in zip(x.example.shape[2:], kernel, stride, strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            if total % 2:
                raise node_error(
                    node, f"auto_pad={auto} pads an axis of size {size} (kernel {k}, stride {s}) "
                    f"by {total}, which is not symmetric; only symmetric padding is supported"
                )
            padding.append(total // 2)
        return stride, (padding[0], padding[1])
    if auto != "NOTSET":
        raise node_error(node, f"auto_pad={auto!r} is not supported")
    pads = tuple(int(p) for p in a.get("pads", (0, 0, 0, 0)))
    if len(pads) != 4 or pads[:2] != pads[2:]:
        raise node_error(
            node, f"pads={list(pads)} are asymmetric (begin != end); only symmetric pads "
            "are supported"
        )
    return stride, (pads[0], pads[1])


def _linear(
    b: Builder, node: onnx.NodeProto, x: Value, w: np.ndarray, bias: np.ndarray | None
) -> None:
    """y = x W^T + bias for ``w`` of shape (out, in)."""
    if x.example.dim() != 2 or x.example.shape[1] != w.shape[1]:
        raise node_error(
            node, f"expects (batch, {w.shape[1]}) inputs, got per-sample shape "
            f"{tuple(x.example.shape[1:])}"
        )
    lin = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(_tensor(w))
        if bias is not None:
            lin.bias.copy_(_tensor(bias))
    b.set(node.output[0], b.module(node, lin, x))
    if bias is None:
        b.bias_free[node.output[0]] = lin


def _gemm(b: Builder, node: onnx.NodeProto) -> None:
    """Y = alpha A B' + beta C with B' = B^T if transB else B: a Linear of weight alpha B'^T."""
    a = _attrs(node)
    if a.get("transA", 0):
        raise node_error(node, "transA=1; only transA=0 is supported")
    x = b.tensor(node, node.input[0])
    w = np.asarray(b.const(node, node.input[1]), dtype=np.float32)
    if w.ndim != 2:
        raise node_error(node, f"weight of rank {w.ndim}; a 2-D constant is required")
    w = (w if a.get("transB", 0) else w.T) * np.float32(a.get("alpha", 1.0))
    c = b.optional_const(node, 2)
    bias = None if c is None else _bias_vector(node, c, w.shape[0]) * np.float32(a.get("beta", 1.0))
    _linear(b, node, x, w, bias)


def _matmul(b: Builder, node: onnx.NodeProto) -> None:
    """Y = A B with a constant (in, out) B: a bias-free Linear (a following Add gives the bias)."""
    x = b.tensor(node, node.input[0])
    w = b.const(node, node.input[1])
    if w.ndim != 2:
        raise node_error(node, f"weight of rank {w.ndim}; a 2-D (in, out) constant is required")
    _linear(b, node, x, np.asarray(w).T, None)


def _conv(b: Builder, node: onnx.NodeProto) -> None:
    a = _attrs(node)
    x = b.tensor(node, node.input[0])
    w = b.const(node, node.input[1])
    if w.ndim != 4:
        raise node_error(node, f"weight of rank {w.ndim}; only 2-D convolutions are supported")
    group = int(a.get("group", 1))
    kernel = (int(w.shape[2]), int(w.shape[3]))
    if tuple(a.get("kernel_shape", kernel)) != kernel:
        raise node_error(node, f"kernel_shape={list(a['kernel_shape'])} != weight shape {kernel}")
    stride, padding = _window(node, a, x, kernel)
    bias = b.optional_const(node, 2)
    conv = nn.Conv2d(w.shape[1] * group, w.shape[0], kernel, stride, padding, groups=group,
                     bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(_tensor(w))
        if bias is not None:
            conv.bias.copy_(_tensor(bias))
    b.set(node.output[0], b.module(node, conv, x))


def _relu(b: Builder, node: onnx.NodeProto) -> None:
    b.set(node.output[0], b.module(node, nn.ReLU(), b.tensor(node, node.input[0])))


def _max_pool(b: Builder, node: onnx.NodeProto) -> None:
    a = _attrs(node)
    _only_first_output(b, node, "Indices")
    x = b.tensor(node, node.input[0])
    kernel = tuple(int(k) for k in a["kernel_shape"])
    stride, padding = _window(node, a, x, kernel)
    b.set(node.output[0], b.module(node, nn.MaxPool2d(kernel, stride, padding), x))


def _average_pool(b: Builder, node: onnx.NodeProto) -> None:
    a = _attrs(node)
    x = b.tensor(node, node.input[0])
    kernel = tuple(int(k) for k in a["kernel_shape"])
    stride, padding = _window(node, a, x, kernel)
    if any(padding) and not a.get("count_include_pad", 0):
        raise node_error(
            node, f"count_include_pad=0 with pads {list(padding)} (the mean would exclude the "
            "padding); only count_include_pad=1 or zero pads are supported"
        )
    pool = nn.AvgPool2d(kernel, stride, padding, count_include_pad=True)
    b.set(node.output[0], b.module(node, pool, x))


def _global_average_pool(b: Builder, node: onnx.NodeProto) -> None:
    """Mean over H x W: an AvgPool2d whose kernel is the whole spatial extent."""
    x = b.tensor(node, node.input[0])
    if x.example.dim() != 4:
        raise node_error(node, f"input of rank {x.example.dim()}; only (N, C, H, W) is supported")
    kernel = (int(x.example.shape[2]), int(x.example.shape[3]))
    b.set(node.output[0], b.module(node, nn.AvgPool2d(kernel), x))


def _reduce_mean(b: Builder, node: onnx.NodeProto) -> None:
    """The mean over the spatial axes (2, 3) of (N, C, H, W), as torch's dynamo exporter
    writes AdaptiveAvgPool2d(1) and x.mean((2, 3)): AvgPool2d over (H, W), then Flatten
    when keepdims=0. Axes come from the attribute (opset < 18) or the second input."""
    a = _attrs(node)
    x = b.tensor(node, node.input[0])
    axes = b.optional_const(node, 1)
    axes = a.get("axes") if axes is None else [int(v) for v in np.asarray(axes).reshape(-1)]
    rank = x.example.dim()
    if axes is None or rank != 4 or sorted(int(v) % rank for v in axes) != [2, 3]:
        raise node_error(
            node, f"ReduceMean over axes {axes} of a rank-{rank} tensor; only the spatial mean "
            "over axes (2, 3) of (N, C, H, W) (a global average pool) is supported"
        )
    kernel = (int(x.example.shape[2]), int(x.example.shape[3]))
    pooled = b.module(node, nn.AvgPool2d(kernel), x)
    if a.get("keepdims", 1):
        b.set(node.output[0], pooled)
        return
    b.set(node.output[0], b.call(torch.flatten, (pooled.node, 1), {},
                                 torch.flatten(pooled.example, 1)))


def _softmax(b: Builder, node: onnx.NodeProto) -> None:
    """Softmax / LogSoftmax along ``axis`` (capture drops it when it is the last op over the
    classes and refuses it elsewhere)."""
    x = b.tensor(node, node.input[0])
    axis = int(_attrs(node).get("axis", -1 if b.opset >= 13 else 1))
    fn = F.softmax if node.op_type == "Softmax" else F.log_softmax
    b.set(node.output[0], b.call(fn, (x.node,), {"dim": axis}, fn(x.example, dim=axis)))


def _input_map(b: Builder, node: onnx.NodeProto) -> None:
    """Sub, Div, Mul or Add of the graph input (or of such a map of it) and a constant:
    input normalization, which capture folds into the first Linear/Conv2d."""
    lhs, rhs = node.input[0], node.input[1]
    tensor, const = (rhs, lhs) if lhs in b.consts else (lhs, rhs)
    if tensor in b.consts or const not in b.consts or tensor not in b.input_chain:
        raise node_error(
            node, f"{node.op_type} is supported between the graph input (or its normalization) "
            "and a constant (input normalization, folded into the first layer), and Add also "
            "as a MatMul's bias or between two same-shape tensors; here it is applied to "
            f"{tensor!r}. Normalize the data outside the model, or fold the constant into a "
            "neighbouring layer before export"
        )
    x = b.values[tensor]
    c = b.constant(node, b.consts[const])
    value = torch.tensor(np.asarray(b.consts[const], dtype=np.float32))
    fn = _ELEMENTWISE[node.op_type]
    args = (c, x.node) if tensor == rhs else (x.node, c)
    example = fn(value, x.example) if tensor == rhs else fn(x.example, value)
    b.set(node.output[0], b.call(fn, args, {}, example))
    b.input_chain.add(node.output[0])


_ELEMENTWISE = {"Sub": operator.sub, "Div": operator.truediv, "Mul": operator.mul,
                "Add": operator.add}


def _flatten_call(b: Builder, node: onnx.NodeProto, x: Value) -> None:
    b.set(node.output[0], b.call(torch.flatten, (x.node, 1), {}, torch.flatten(x.example, 1)))


def _flatten(b: Builder, node: onnx.NodeProto) -> None:
    x = b.tensor(node, node.input[0])
    axis = _attrs(node).get("axis", 1)
    if (axis + x.example.dim() if axis < 0 else axis) != 1:
        raise node_error(node, f"axis={axis}; only axis=1 (keep the batch dim) is supported")
    _flatten_call(b, node, x)


def _reshape(b: Builder, node: onnx.NodeProto) -> None:
    """Only (batch, -1): target [0 | -1 | static batch, -1 | per-sample size]."""
    x = b.tensor(node, node.input[0])
    target = [int(v) for v in np.asarray(b.const(node, node.input[1])).reshape(-1)]
    size = math.prod(x.example.shape[1:])
    allowzero = _attrs(node).get("allowzero", 0)
    batch_ok = (0,) if not allowzero else ()
    batch_ok += (-1,) + ((b.batch,) if b.batch else ())
    flat = (
        len(target) == 2
        and target[0] in batch_ok
        and target[1] in (-1, size)
        and target != [-1, -1]
    )
    if not flat:
        raise node_error(
            node, f"reshape of a per-sample shape {tuple(x.example.shape[1:])} to {target}; "
            f"only flatten-like targets [0, -1] or [-1, {size}] are supported"
        )
    _flatten_call(b, node, x)


def _batch_norm(b: Builder, node: onnx.NodeProto) -> None:
    """Inference BatchNorm with constant statistics (capture folds it into the Conv/Linear)."""
    a = _attrs(node)
    if a.get("training_mode", 0):
        raise node_error(node, "training_mode=1; only inference BatchNorm is supported")
    _only_first_output(b, node, "running statistics")
    x = b.tensor(node, node.input[0])
    cls = {2: nn.BatchNorm1d, 4: nn.BatchNorm2d}.get(x.example.dim())
    if cls is None:
        raise node_error(node, f"input of rank {x.example.dim()}; only rank 2 or 4 is supported")
    channels = int(x.example.shape[1])
    params = [np.asarray(b.const(node, name)) for name in node.input[1:5]]
    if any(p.shape != (channels,) for p in params):
        shapes = [p.shape for p in params]
        raise node_error(node, f"parameters of shapes {shapes}, not ({channels},)")
    bn = cls(channels, eps=a.get("epsilon", 1e-5))
    with torch.no_grad():
        for target, p in zip((bn.weight, bn.bias, bn.running_mean, bn.running_var), params,
                             strict=True):
            target.copy_(_tensor(p))
    b.set(node.output[0], b.module(node, bn, x))


def _dropout(b: Builder, node: onnx.NodeProto) -> None:
    """Inference dropout is the identity (an unused mask output is ignored)."""
    _only_first_output(b, node, "mask")
    training = b.optional_const(node, 2)
    if training is not None and bool(np.asarray(training).any()):
        raise node_error(node, "training_mode=True; only inference dropout is supported")
    b.set(node.output[0], b.tensor(node, node.input[0]))


def _identity(b: Builder, node: onnx.NodeProto) -> None:
    src, dst = node.input[0], node.output[0]
    if src in b.consts:
        b.consts[dst] = b.consts[src]
    else:
        b.set(dst, b.tensor(node, src))


def _add(b: Builder, node: onnx.NodeProto) -> None:
    """Two same-shape tensors -> residual add; tensor + constant -> bias of a MatMul/Gemm."""
    lhs, rhs = node.input[0], node.input[1]
    if lhs in b.input_chain or rhs in b.input_chain:
        _input_map(b, node)
        return
    if lhs in b.consts or rhs in b.consts:
        _add_bias(b, node)
        return
    x, y = b.tensor(node, lhs), b.tensor(node, rhs)
    if x.example.shape != y.example.shape:
        raise node_error(
            node, f"inputs of per-sample shapes {tuple(x.example.shape[1:])} and "
            f"{tuple(y.example.shape[1:])}; only same-shape adds (no broadcasting) are supported"
        )
    b.set(node.output[0], b.call(operator.add, (x.node, y.node), {}, x.example + y.example))


def _add_bias(b: Builder, node: onnx.NodeProto) -> None:
    lhs, rhs = node.input[0], node.input[1]
    name, const = (rhs, lhs) if lhs in b.consts else (lhs, rhs)
    lin = b.bias_free.get(name)
    if name in b.consts or lin is None or b.uses[name] != 1:
        raise node_error(
            node, "adding a constant is only supported as the bias of the bias-free MatMul/Gemm "
            "that produces the other input and whose output is used nowhere else"
        )
    del b.bias_free[name]
    lin.bias = nn.Parameter(_tensor(_bias_vector(node, b.const(node, const), lin.out_features)))
    x = b.values[name]
    b.set(node.output[0], Value(x.node, x.example + lin.bias.detach()))


def _concat(b: Builder, node: onnx.NodeProto) -> None:
    xs = [b.tensor(node, name) for name in node.input]
    axis = _attrs(node)["axis"]
    if (axis + xs[0].example.dim() if axis < 0 else axis) != 1:
        raise node_error(node, f"axis={axis}; only axis=1 (channels) is supported")
    example = torch.cat([x.example for x in xs], dim=1)
    b.set(node.output[0], b.call(torch.cat, ([x.node for x in xs],), {"dim": 1}, example))


def _constant(b: Builder, node: onnx.NodeProto) -> None:
    a = _attrs(node)
    if "value" in a:
        value = numpy_helper.to_array(a["value"])
    elif a.keys() & {"value_float", "value_floats", "value_int", "value_ints"}:
        value = np.asarray(next(iter(a.values())))
    else:
        raise node_error(node, f"Constant with attribute {sorted(a)} is not supported")
    b.consts[node.output[0]] = value


HANDLERS: dict[str, Callable[[Builder, onnx.NodeProto], None]] = {
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Conv": _conv,
    "Relu": _relu,
    "MaxPool": _max_pool,
    "AveragePool": _average_pool,
    "GlobalAveragePool": _global_average_pool,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "BatchNormalization": _batch_norm,
    "Dropout": _dropout,
    "Identity": _identity,
    "Add": _add,
    "Concat": _concat,
    "Constant": _constant,
    "ReduceMean": _reduce_mean,
    "Softmax": _softmax,
    "LogSoftmax": _softmax,
    "Sub": _input_map,
    "Div": _input_map,
    "Mul": _input_map,
}
