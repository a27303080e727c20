"""Capture a traceable PyTorch model into a :class:`~spikecast.ir.graph.Network`.

The model is traced with ``torch.fx`` (so ``nn.Sequential``, ``F.relu``, ``torch.flatten``,
``x.view(x.size(0), -1)``, residual additions ``x + y`` and ``torch.cat(..., dim=1)`` in plain
``forward`` code all work), shapes are propagated with an example input, BatchNorm is folded
into the preceding Linear/Conv2d, Dropout and Identity are dropped. Parameters are copied;
the user's model is never mutated.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from enum import Enum

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from spikecast.ir.graph import (
    INPUT,
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    Network,
    ReLU,
    canonicalize,
)

SUPPORTED = (
    "Linear, Conv2d (groups=1, dilation=1, zero padding), AvgPool2d, MaxPool2d, Flatten/"
    "flatten/view/reshape to (batch, -1), ReLU/F.relu/torch.relu, BatchNorm1d/2d after "
    "Linear/Conv2d (folded), Dropout/Identity (dropped), x + y of two tensors (Add), "
    "torch.cat along dim 1 (Concat)"
)
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_CAT_FUNCTIONS = (torch.cat, torch.concat, torch.concatenate)
_DROPPED_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
_DROPPED_FUNCTIONS = (F.dropout, F.dropout1d, F.dropout2d, torch.dropout)
_RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_)
_FLATTEN_FUNCTIONS = (torch.flatten, torch.reshape)


class Marker(Enum):
    """Nodes that produce no layer: shape helpers (``x.size(0)``) and folded BatchNorms."""

    AUX = "aux"
    FOLDED = "folded"


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


def _unsupported(node: torch.fx.Node, what: str, detail: str = "") -> ValueError:
    extra = f" ({detail})" if detail else ""
    return ValueError(
        f"node {node.name!r} (op={node.op}, target={what}) is not supported{extra}. "
        f"Supported: {SUPPORTED}"
    )


def fold_batchnorm(layer: Linear | Conv2d, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> Linear | Conv2d:
    """Fold an eval-mode BatchNorm into the preceding layer.

    gamma' = gamma / sqrt(var + eps);  W' = W gamma' (per output channel);
    b' = (b - mean) gamma' + beta.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm without running statistics (track_running_stats=False)")
    scale = torch.ones_like(bn.running_var) if bn.weight is None else bn.weight.detach().clone()
    shift = torch.zeros_like(bn.running_var) if bn.bias is None else bn.bias.detach().clone()
    g = scale / torch.sqrt(bn.running_var + bn.eps)
    w = layer.weight * g.reshape(-1, *([1] * (layer.weight.dim() - 1)))
    b0 = layer.bias if layer.bias is not None else torch.zeros_like(g)
    b = (b0 - bn.running_mean) * g + shift
    if isinstance(layer, Linear):
        return Linear(w, b)
    return Conv2d(w, b, layer.stride, layer.padding)


def _conv_from_module(m: nn.Conv2d, node: torch.fx.Node) -> Conv2d:
    if m.groups != 1 or _pair(m.dilation) != (1, 1) or m.padding_mode != "zeros":
        raise _unsupported(
            node, "Conv2d",
            f"groups={m.groups}, dilation={m.dilation}, padding_mode={m.padding_mode!r}",
        )
    if isinstance(m.padding, str):
        if m.padding == "valid":
            padding = (0, 0)
        else:  # 'same' with stride 1
            kh, kw = m.kernel_size
            if kh % 2 == 0 or kw % 2 == 0:
                raise _unsupported(node, "Conv2d", "padding='same' with an even kernel")
            padding = ((kh - 1) // 2, (kw - 1) // 2)
    else:
        padding = _pair(m.padding)
    bias = None if m.bias is None else m.bias.detach().clone()
    return Conv2d(m.weight.detach().clone(), bias, _pair(m.stride), padding)


def _pool_from_module(m: nn.MaxPool2d | nn.AvgPool2d, node: torch.fx.Node) -> Layer:
    if m.ceil_mode:
        raise _unsupported(node, type(m).__name__, "ceil_mode=True")
    k = _pair(m.kernel_size)
    s = _pair(m.stride) if m.stride is not None else k
    p = _pair(m.padding)
    if isinstance(m, nn.MaxPool2d):
        if _pair(m.dilation) != (1, 1):
            raise _unsupported(node, "MaxPool2d", f"dilation={m.dilation}")
        return MaxPool2d(k, s, p)
    if not m.count_include_pad and p != (0, 0):
        raise _unsupported(node, "AvgPool2d", "count_include_pad=False with padding")
    if m.divisor_override is not None:
        raise _unsupported(node, "AvgPool2d", f"divisor_override={m.divisor_override}")
    return AvgPool2d(k, s, p)


def _is_flatten(node: torch.fx.Node) -> bool:
    """A reshape whose result is (batch, prod(rest)) of its input."""
    src = node.args[0]
    if not isinstance(src, torch.fx.Node):
        return False
    a, b = src.meta.get("tensor_meta"), node.meta.get("tensor_meta")
    if a is None or b is None:
        return False
    return len(b.shape) == 2 and b.shape[0] == a.shape[0] and b.shape[1] == math.prod(a.shape[1:])


def _function_layer(node: torch.fx.Node) -> Layer | Marker | None:
    """Layer for a call_function/call_method node; None to drop it."""
    t = node.target
    if node.op == "call_method":
        if t in ("add", "add_"):
            return _add(node)
        if t in ("relu", "relu_"):
            return ReLU()
        if t in ("view", "reshape", "flatten") and _is_flatten(node):
            return Flatten()
        if t in ("size", "dim"):
            return Marker.AUX
        if t in ("contiguous",):
            return None
        raise _unsupported(node, f"Tensor.{t}")
    if t in _RELU_FUNCTIONS:
        return ReLU()
    if t in _ADD_FUNCTIONS:
        return _add(node)
    if t in _CAT_FUNCTIONS:
        return _concat(node)
    if t in _FLATTEN_FUNCTIONS and _is_flatten(node):
        return Flatten()
    if t in _DROPPED_FUNCTIONS:
        return None
    if t in (F.max_pool2d, F.avg_pool2d):
        return _functional_pool(node)
    if t is operator.getitem or t is getattr:
        return Marker.AUX
    raise _unsupported(node, getattr(t, "__name__", str(t)))


def _add(node: torch.fx.Node) -> Add:
    """x + y of two tensors of one shape (no alpha, no broadcasting, no constants)."""
    args = list(node.args)
    if len(args) != 2 or not all(isinstance(a, torch.fx.Node) for a in args) or node.kwargs:
        raise _unsupported(node, "add", "only the sum of two tensors, without alpha or constants")
    shapes = [a.meta["tensor_meta"].shape for a in args]
    if shapes[0] != shapes[1]:
        raise _unsupported(node, "add", f"operand shapes {list(shapes[0])} and "
                                        f"{list(shapes[1])} differ (no broadcasting)")
    return Add((1.0, 1.0))


def _concat(node: torch.fx.Node) -> Concat:
    """torch.cat of a list of tensors along the channel axis (dim 1)."""
    tensors = node.args[0] if node.args else node.kwargs.get("tensors")
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    ndim = len(node.meta["tensor_meta"].shape)
    if not isinstance(tensors, (list, tuple)) or not all(
        isinstance(a, torch.fx.Node) for a in tensors
    ):
        raise _unsupported(node, "cat", "only a list of tensors")
    if not isinstance(dim, int) or dim % ndim != 1:
        raise _unsupported(node, "cat", f"dim={dim}; only the channel axis (dim=1)")
    return Concat(tuple(1.0 for _ in tensors))


def _inputs(node: torch.fx.Node) -> list[torch.fx.Node]:
    """The tensor operands of ``node`` (a concatenation's list flattened)."""
    out: list[torch.fx.Node] = []
    for a in (*node.args, *node.kwargs.values()):
        if isinstance(a, torch.fx.Node):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(x for x in a if isinstance(x, torch.fx.Node))
    return out


_POOL_SIGNATURES = {
    "max_pool2d": (
        ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
        {"dilation": 1, "ceil_mode": False, "return_indices": False},
    ),
    "avg_pool2d": (
        ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
         "divisor_override"),
        {"ceil_mode": False, "count_include_pad": True, "divisor_override": None},
    ),
}


def _functional_pool(node: torch.fx.Node) -> Layer:
    kind = "max_pool2d" if node.target is F.max_pool2d else "avg_pool2d"
    names, defaults = _POOL_SIGNATURES[kind]
    args = dict(zip(names, node.args, strict=False)) | dict(node.kwargs)
    for key, default in defaults.items():
        value = args.get(key, default)
        same = _pair(value) == _pair(default) if key == "dilation" else value == default
        if not same:
            raise _unsupported(node, kind, f"{key}={value!r}")
    k = _pair(args["kernel_size"])
    s = _pair(args.get("stride") or k)
    p = _pair(args.get("padding", 0))
    return MaxPool2d(k, s, p) if kind == "max_pool2d" else AvgPool2d(k, s, p)


def _module_layer(node: torch.fx.Node, m: nn.Module) -> Layer | None:
    if isinstance(m, nn.Linear):
        bias = None if m.bias is None else m.bias.detach().clone()
        return Linear(m.weight.detach().clone(), bias)
    if isinstance(m, nn.Conv2d):
        return _conv_from_module(m, node)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        return _pool_from_module(m, node)
    if isinstance(m, nn.ReLU):
        return ReLU()
    if isinstance(m, nn.Flatten):
        if _is_flatten(node):
            return Flatten()
        raise _unsupported(node, "Flatten", f"start_dim={m.start_dim}, end_dim={m.end_dim}")
    if isinstance(m, _DROPPED_MODULES):
        return None
    raise _unsupported(node, type(m).__name__)


def capture(model: nn.Module, input_shape: tuple[int, ...]) -> Network:
    """Trace ``model`` into a canonical :class:`Network` for per-sample ``input_shape``.

    Raises ``ValueError`` naming the node, its op and the supported list for anything
    outside the supported set, and for graphs that are not a single chain. A
    :class:`~spikecast.finetune.to_module.NetworkModule` gives its own layer graph.
    """
    from spikecast.finetune.to_module import NetworkModule

    if isinstance(model, NetworkModule):
        if tuple(input_shape) != model.input_shape:
            raise ValueError(f"the network takes samples of shape {model.input_shape}, "
                             f"not {tuple(input_shape)}")
        return model.to_network()
    modes = {m: m.training for m in model.modules()}
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types for untraceable code
        raise ValueError(f"torch.fx could not trace {type(model).__name__}: {exc}") from exc
    try:
        gm.eval()
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    except RuntimeError as exc:
        raise ValueError(
            f"{type(model).__name__} does not accept inputs of per-sample shape "
            f"{tuple(input_shape)}: {exc}"
        ) from exc
    finally:
        for m, training in modes.items():
            m.training = training
    modules = dict(gm.named_modules())

    layers: list[Layer] = []
    names: list[str] = []
    sources: list[tuple[int, ...]] = []
    value: dict[torch.fx.Node, int] = {}  # node -> index of the layer holding its value
    handlers: dict[str, Callable[[torch.fx.Node], Layer | Marker | None]] = {
        "call_module": lambda n: _module_or_bn(
            n, modules[n.target], layers, names, value, modules
        ),
        "call_function": _function_layer,
        "call_method": _function_layer,
    }
    output: torch.fx.Node | None = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if value:
                raise _unsupported(node, "second input")
            value[node] = INPUT
            continue
        if node.op == "output":
            output = node.args[0]
            break
        if node.op == "get_attr":
            raise _unsupported(node, str(node.target), "parameters used outside a layer")
        result = handlers[node.op](node)
        if result is Marker.AUX:
            continue
        operands = _inputs(node)
        if not isinstance(result, (Add, Concat)):
            operands = operands[:1]
        if not operands or any(a not in value for a in operands):
            raise _unsupported(node, str(node.target), "an operand is not a tensor of the network")
        if result is None or result is Marker.FOLDED:
            value[node] = value[operands[0]]
            continue
        layers.append(result)
        names.append(str(node.target) if node.op == "call_module" else node.name)
        sources.append(tuple(value[a] for a in operands))
        value[node] = len(layers) - 1
    if not layers:
        raise ValueError(f"{type(model).__name__} contains no supported layer")
    if not isinstance(output, torch.fx.Node) or output not in value:
        raise ValueError(f"{type(model).__name__} must return one tensor")
    last = value[output]
    if last != len(layers) - 1:
        raise ValueError(
            f"{type(model).__name__}: the returned tensor is not the last layer's output"
        )
    try:
        net = Network(tuple(layers), tuple(names), tuple(input_shape), tuple(sources))
    except ValueError as exc:
        raise ValueError(f"{type(model).__name__}: {exc}") from exc
    return canonicalize(net)


def _module_or_bn(
    node: torch.fx.Node, m: nn.Module, layers: list[Layer], names: list[str],
    value: dict[torch.fx.Node, int], modules: dict[str, nn.Module],
) -> Layer | Marker | None:
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        k = value.get(node.args[0], INPUT)
        if k == INPUT or not isinstance(layers[k], (Linear, Conv2d)):
            raise _unsupported(
                node, type(m).__name__, "BatchNorm must directly follow a Linear or Conv2d"
            )
        origin = next(n for n, v in value.items() if v == k and not _passes_through(n, modules))
        readers = _readers(origin, modules)
        if readers != [node]:
            raise _unsupported(
                node, type(m).__name__,
                f"the output of {names[k]!r} is also read by "
                f"{[r.name for r in readers if r is not node]}; folding would change it there",
            )
        layers[k] = fold_batchnorm(layers[k], m)
        names[k] = f"{names[k]}+{node.target}"
        return Marker.FOLDED
    return _module_layer(node, m)


def _passes_through(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    """A node capture drops (its value is its input's): Dropout, Identity, contiguous."""
    if node.op == "call_module":
        return isinstance(modules[node.target], _DROPPED_MODULES)
    if node.op == "call_method":
        return node.target == "contiguous"
    return node.op == "call_function" and node.target in _DROPPED_FUNCTIONS


def _readers(node: torch.fx.Node, modules: dict[str, nn.Module]) -> list[torch.fx.Node]:
    """Every node that reads ``node``'s value, looking through dropped nodes; a layer's
    raw output and its Dropout-ed alias are one value."""
    out: list[torch.fx.Node] = []
    for user in node.users:
        if _passes_through(user, modules):
            out.extend(_readers(user, modules))
        else:
            out.append(user)
    return out
