"""Capture a traceable PyTorch model into a :class:`~spikecast.ir.graph.Network`.

The model is traced with ``torch.fx`` (so ``nn.Sequential``, ``F.relu``, ``torch.flatten``,
``x.view(x.size(0), -1)``, residual additions ``x + y`` and ``torch.cat(..., dim=1)`` in plain
``forward`` code all work), shapes are propagated with an example input, BatchNorm is folded
into the preceding Linear/Conv2d, Dropout and Identity are dropped, input normalization by
constants is folded into the first layer (:mod:`spikecast.frontends.input_affine`), an
adaptive average pool whose output size divides its input is an AvgPool2d, and a trailing
softmax / log-softmax over the classes is dropped with a notice (it does not change the
argmax, which is what a spiking readout reports). Parameters are copied; the user's model
is never mutated.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable
from enum import Enum

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from spikecast.checks import require_finite_tensors
from spikecast.errors import SpikecastError
from spikecast.frontends.fx_common import pair, tensor_inputs, unsupported
from spikecast.frontends.global_pool import adaptive_avg_pool, spatial_mean
from spikecast.frontends.input_affine import InputAffine, absorb, constant_value, input_transform
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

_log = logging.getLogger(__name__)
_SOFTMAX_FUNCTIONS = (F.softmax, F.log_softmax, torch.softmax, torch.log_softmax)
_SOFTMAX_METHODS = ("softmax", "log_softmax")
_MEAN_FUNCTIONS = (torch.mean,)
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_CAT_FUNCTIONS = (torch.cat, torch.concat, torch.concatenate)
_DROPPED_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
_DROPPED_FUNCTIONS = (F.dropout, F.dropout1d, F.dropout2d, torch.dropout)
_RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_)
_FLATTEN_FUNCTIONS = (torch.flatten, torch.reshape)


class Marker(Enum):
    """Nodes that produce no layer: shape helpers (``x.size(0)``), folded BatchNorms and a
    final softmax."""

    AUX = "aux"
    FOLDED = "folded"
    SOFTMAX = "softmax"


def fold_batchnorm(layer: Linear | Conv2d, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> Linear | Conv2d:
    """Fold an eval-mode BatchNorm into the preceding layer.

    gamma' = gamma / sqrt(var + eps);  W' = W gamma' (per output channel);
    b' = (b - mean) gamma' + beta.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm without running statistics (track_running_stats=False)")
    if bool((bn.running_var + bn.eps <= 0).any()):
        raise SpikecastError("BatchNorm running variance <= -eps: sqrt(var + eps) undefined")
    scale = torch.ones_like(bn.running_var) if bn.weight is None else bn.weight.detach().clone()
    shift = torch.zeros_like(bn.running_var) if bn.bias is None else bn.bias.detach().clone()
    g = scale / torch.sqrt(bn.running_var + bn.eps)
    w = layer.weight * g.reshape(-1, *([1] * (layer.weight.dim() - 1)))
    b0 = layer.bias if layer.bias is not None else torch.zeros_like(g)
    b = (b0 - bn.running_mean) * g + shift
    if isinstance(layer, Linear):
        return Linear(w, b)
    return Conv2d(w, b, layer.stride, layer.padding, layer.groups)


def _drop_softmax(node: torch.fx.Node, modules: dict[str, nn.Module]) -> None:
    """A softmax / log-softmax over the classes of the returned (batch, classes) logits is
    monotonic: dropping it keeps the argmax (the spiking readout). Anywhere else, refused."""
    if node.op == "call_module":
        dim = modules[node.target].dim
    else:
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    shape = tuple(node.meta["tensor_meta"].shape)
    users = list(node.users)
    last = len(users) == 1 and users[0].op == "output"
    if not last or len(shape) != 2 or dim not in (None, 1, -1):
        raise unsupported(
            node, "softmax", f"dim={dim} on shape {list(shape)}, "
            f"{'returned' if last else 'read by ' + str([u.name for u in users])}; a softmax "
            "is supported as the last operation over the classes of (batch, classes) only "
            "(dropped there: the argmax is unchanged); remove it from the model elsewhere",
        )
    _log.warning("dropped the final %s %r: the spiking readout is the argmax, which it does "
                 "not change", "log_softmax" if "log" in str(node.target).lower() else "softmax",
                 node.name)


def _conv_from_module(m: nn.Conv2d, node: torch.fx.Node) -> Conv2d:
    if pair(m.dilation) != (1, 1) or m.padding_mode != "zeros":
        raise unsupported(
            node, "Conv2d", f"dilation={m.dilation}, padding_mode={m.padding_mode!r}"
        )
    if isinstance(m.padding, str):
        if m.padding == "valid":
            padding = (0, 0)
        else:  # 'same' with stride 1
            kh, kw = m.kernel_size
            if kh % 2 == 0 or kw % 2 == 0:
                raise unsupported(node, "Conv2d", "padding='same' with an even kernel")
            padding = ((kh - 1) // 2, (kw - 1) // 2)
    else:
        padding = pair(m.padding)
    bias = None if m.bias is None else m.bias.detach().clone()
    return Conv2d(m.weight.detach().clone(), bias, pair(m.stride), padding, m.groups)


def _pool_from_module(m: nn.MaxPool2d | nn.AvgPool2d, node: torch.fx.Node) -> Layer:
    if m.ceil_mode:
        raise unsupported(node, type(m).__name__, "ceil_mode=True")
    k = pair(m.kernel_size)
    s = pair(m.stride) if m.stride is not None else k
    p = pair(m.padding)
    if isinstance(m, nn.MaxPool2d):
        if pair(m.dilation) != (1, 1):
            raise unsupported(node, "MaxPool2d", f"dilation={m.dilation}")
        return MaxPool2d(k, s, p)
    if not m.count_include_pad and p != (0, 0):
        raise unsupported(node, "AvgPool2d", "count_include_pad=False with padding")
    if m.divisor_override is not None:
        raise unsupported(node, "AvgPool2d", f"divisor_override={m.divisor_override}")
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
        if t in _SOFTMAX_METHODS:
            return Marker.SOFTMAX
        if t == "mean":
            return spatial_mean(node)
        raise unsupported(node, f"Tensor.{t}")
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
    if t is F.adaptive_avg_pool2d:
        size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
        return adaptive_avg_pool(node, size)
    if t in _SOFTMAX_FUNCTIONS:
        return Marker.SOFTMAX
    if t in _MEAN_FUNCTIONS:
        return spatial_mean(node)
    if t is operator.getitem or t is getattr:
        return Marker.AUX
    raise unsupported(node, getattr(t, "__name__", str(t)))


def _add(node: torch.fx.Node) -> Add:
    """x + y of two tensors of one shape (no alpha, no broadcasting, no constants)."""
    args = list(node.args)
    if len(args) != 2 or not all(isinstance(a, torch.fx.Node) for a in args) or node.kwargs:
        raise unsupported(node, "add", "only the sum of two tensors, without alpha or constants")
    shapes = [a.meta["tensor_meta"].shape for a in args]
    if shapes[0] != shapes[1]:
        raise unsupported(node, "add", f"operand shapes {list(shapes[0])} and "
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
        raise unsupported(node, "cat", "only a list of tensors")
    if not isinstance(dim, int) or dim % ndim != 1:
        raise unsupported(node, "cat", f"dim={dim}; only the channel axis (dim=1)")
    return Concat(tuple(1.0 for _ in tensors))


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
        same = pair(value) == pair(default) if key == "dilation" else value == default
        if not same:
            raise unsupported(node, kind, f"{key}={value!r}")
    k = pair(args["kernel_size"])
    s = pair(args.get("stride") or k)
    p = pair(args.get("padding", 0))
    return MaxPool2d(k, s, p) if kind == "max_pool2d" else AvgPool2d(k, s, p)


def _module_layer(node: torch.fx.Node, m: nn.Module) -> Layer | None:
    if isinstance(m, nn.Linear):
        bias = None if m.bias is None else m.bias.detach().clone()
        return Linear(m.weight.detach().clone(), bias)
    if isinstance(m, nn.Conv2d):
        return _conv_from_module(m, node)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        return _pool_from_module(m, node)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return adaptive_avg_pool(node, m.output_size)
    if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        return Marker.SOFTMAX
    if isinstance(m, nn.ReLU):
        return ReLU()
    if isinstance(m, nn.Flatten):
        if _is_flatten(node):
            return Flatten()
        raise unsupported(node, "Flatten", f"start_dim={m.start_dim}, end_dim={m.end_dim}")
    if isinstance(m, _DROPPED_MODULES):
        return None
    raise unsupported(node, type(m).__name__)


def _check_tensors(model: nn.Module) -> None:
    """Refuse parameters and buffers that are not finite float32 (named, e.g. 'fc1.weight'):
    a NaN weight would otherwise be simulated and reported as an accuracy."""
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    for name, t in tensors.items():
        if t.is_floating_point() and t.dtype != torch.float32:
            raise SpikecastError(
                f"{type(model).__name__}: tensor {name!r} is {t.dtype}; spikecast captures "
                "float32 models: convert a copy with model.float()"
            )
    require_finite_tensors({k: t.detach() for k, t in tensors.items()}, type(model).__name__)


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
    _check_tensors(model)
    modes = {m: m.training for m in model.modules()}
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types for untraceable code
        raise ValueError(f"torch.fx could not trace {type(model).__name__}: {exc}") from exc
    example = torch.zeros(1, *input_shape)
    try:
        gm.eval()
        with torch.no_grad():
            gm(example)  # a mismatch fails here, before ShapeProp prints its own traceback
            ShapeProp(gm).propagate(example)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise SpikecastError(
            f"{type(model).__name__} does not accept inputs of per-sample shape "
            f"{tuple(input_shape)}: {reason}"
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
    consts: dict[torch.fx.Node, torch.Tensor] = {}  # nodes computed from constants only
    affine: dict[torch.fx.Node, InputAffine] = {}  # the input under a constant affine map
    output: torch.fx.Node | None = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if value:
                raise unsupported(node, "second input")
            value[node] = INPUT
            continue
        if node.op == "output":
            output = node.args[0]
            break
        const = constant_value(node, consts, gm)
        if const is not None:
            consts[node] = const
            continue
        transform = input_transform(node, consts, affine, value, input_shape)
        if transform is not None:
            affine[node] = transform
            value[node] = INPUT
            continue
        result = handlers[node.op](node)
        if result is Marker.AUX:
            continue
        operands = tensor_inputs(node)
        if not isinstance(result, (Add, Concat)):
            operands = operands[:1]
        if not operands or any(a not in value for a in operands):
            detail = ("a constant used outside input normalization or a layer"
                      if any(a in consts for a in operands) else
                      "an operand is not a tensor of the network")
            raise unsupported(node, str(node.target), detail)
        if result is Marker.SOFTMAX:
            _drop_softmax(node, modules)
        name = str(node.target) if node.op == "call_module" else node.name
        result = absorb(node, result, operands, affine, name)
        if result is None or isinstance(result, Marker):
            value[node] = value[operands[0]]
            continue
        src = tuple(value[a] for a in operands)
        for k, layer in enumerate(result if isinstance(result, list) else [result]):
            layers.append(layer)
            names.append(name if k == 0 else f"{name}.{type(layer).__name__.lower()}")
            sources.append(src)
            src = (len(layers) - 1,)
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
            raise unsupported(
                node, type(m).__name__, "BatchNorm must directly follow a Linear or Conv2d"
            )
        origin = next(n for n, v in value.items() if v == k and not _passes_through(n, modules))
        readers = _readers(origin, modules)
        if readers != [node]:
            raise unsupported(
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
