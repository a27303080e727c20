"""Import an ONNX model as a :class:`~spikecast.ir.graph.Network`.

The ONNX graph is rebuilt as a ``torch.fx.GraphModule`` of standard torch modules and
functions (:func:`onnx_to_fx`; one converter per op in :mod:`spikecast.frontends.onnx.ops`), which
:func:`spikecast.frontends.torch_fx.capture` then traces, so the ONNX and PyTorch front ends share
BatchNorm folding, canonicalization and every check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from os import PathLike
from pathlib import Path

import numpy as np
import torch
import torch.fx
from torch import nn

try:
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "importing ONNX models needs the 'onnx' package: pip install 'spikecast[onnx]'"
    ) from exc

from spikecast.frontends.onnx.ops import HANDLERS, Value, label, node_error, unsupported_op
from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import Network

MIN_OPSET = 11
_FLOAT_TYPES = (
    onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
    onnx.TensorProto.BFLOAT16,
)


class Builder:
    """Accumulates the fx graph, its submodules and the ONNX name -> value/constant maps."""

    def __init__(self, graph: onnx.GraphProto, batch: int | None, opset: int) -> None:
        self.fx = torch.fx.Graph()
        self.root = nn.Module()
        self.values: dict[str, Value] = {}
        self.consts: dict[str, np.ndarray] = {
            init.name: numpy_helper.to_array(init) for init in graph.initializer
        }
        self.uses = Counter(name for n in graph.node for name in n.input if name)
        self.uses.update(o.name for o in graph.output)
        self.batch = batch
        self.opset = opset
        self.bias_free: dict[str, nn.Linear] = {}
        self.input_chain: set[str] = set()  # the graph input and constant maps of it

    def tensor(self, node: onnx.NodeProto, name: str) -> Value:
        """The computed tensor ``name`` (an input of ``node``)."""
        if name in self.consts:
            raise node_error(
                node, f"input {name!r} is a constant where a tensor computed from the graph "
                "input is expected"
            )
        return self.values[name]

    def const(self, node: onnx.NodeProto, name: str) -> np.ndarray:
        """The constant ``name`` (an initializer, a Constant node or an Identity of one)."""
        if name not in self.consts:
            raise node_error(
                node, f"input {name!r} must be a constant (initializer or Constant node), "
                "not a computed tensor"
            )
        return self.consts[name]

    def optional_const(self, node: onnx.NodeProto, index: int) -> np.ndarray | None:
        """The constant at input position ``index``, or None when the input is omitted."""
        if index >= len(node.input) or not node.input[index]:
            return None
        return self.const(node, node.input[index])

    def set(self, name: str, value: Value) -> None:
        self.values[name] = value

    def module(self, node: onnx.NodeProto, module: nn.Module, x: Value) -> Value:
        """Add ``module`` (named after the ONNX node) and call it on ``x``."""
        base = "".join(c if c.isalnum() else "_" for c in label(node)).strip("_")
        base = base or node.op_type.lower()
        name, k = base, 1
        while hasattr(self.root, name):
            k += 1
            name = f"{base}_{k}"
        self.root.add_module(name, module.eval())
        with torch.no_grad():
            example = module(x.example)
        return Value(self.fx.call_module(name, (x.node,)), example)

    def constant(self, node: onnx.NodeProto, value: np.ndarray) -> torch.fx.Node:
        """A buffer holding ``value`` (float32), read by a ``get_attr`` node."""
        name = f"const_{len(self.root._buffers)}"
        self.root.register_buffer(name, torch.tensor(np.asarray(value, dtype=np.float32)))
        return self.fx.get_attr(name)

    def call(
        self, fn: Callable[..., torch.Tensor], args: tuple, kwargs: dict, example: torch.Tensor
    ) -> Value:
        """Add a call of the torch function ``fn`` whose result on the examples is ``example``."""
        return Value(self.fx.call_function(fn, args, kwargs), example)


def read_model(source: str | PathLike[str] | bytes | onnx.ModelProto) -> onnx.ModelProto:
    """Parse and validate an ONNX model from a path, serialized bytes or a ``ModelProto``.

    A missing, corrupt or truncated file raises ``ValueError``.
    """
    if isinstance(source, onnx.ModelProto):
        model, what = source, "the ONNX model"
    else:
        try:
            if isinstance(source, (bytes, bytearray, memoryview)):
                what = "the given bytes"
                model = onnx.load_model_from_string(bytes(source))
            else:
                what = str(source)
                if not Path(source).is_file():
                    raise ValueError(f"ONNX file {what!r} does not exist or is not a file")
                model = onnx.load(source)
        except DecodeError as exc:
            raise ValueError(
                f"{what} is not a valid ONNX model (corrupt or truncated): {exc}"
            ) from exc
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # ValidationError, or a message that is not even UTF-8
        raise ValueError(f"{what} is not a valid ONNX model: {exc}") from exc
    return model


def _check_opset(model: onnx.ModelProto) -> int:
    """The model's default-domain opset (>= MIN_OPSET, else ``ValueError``)."""
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions or versions[0] < MIN_OPSET:
        found = versions[0] if versions else "none"
        raise ValueError(f"ONNX opset {found} is not supported; export with opset >= {MIN_OPSET}")
    return versions[0]


def _graph_input(graph: onnx.GraphProto) -> onnx.ValueInfoProto:
    initialized = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialized]
    if len(inputs) != 1:
        raise ValueError(
            f"the ONNX graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
            "exactly one is supported"
        )
    if len(graph.output) != 1:
        raise ValueError(
            f"the ONNX graph has {len(graph.output)} outputs "
            f"({', '.join(o.name for o in graph.output)}); exactly one is supported"
        )
    elem = inputs[0].type.tensor_type.elem_type
    if elem not in _FLOAT_TYPES:
        raise ValueError(
            f"ONNX input {inputs[0].name!r} has element type "
            f"{onnx.TensorProto.DataType.Name(elem)}; only floating-point inputs are supported"
        )
    return inputs[0]


def input_shape_of(
    model: onnx.ModelProto, input_shape: tuple[int, ...] | None = None
) -> tuple[tuple[int, ...], int | None]:
    """Per-sample input shape and static batch size (None if symbolic) of ``model``.

    The shape is the ONNX input's static dims after the batch dim, or ``input_shape`` when
    given (checked against the static dims).
    """
    inp = _graph_input(model.graph)
    tensor_type = inp.type.tensor_type
    dims = (
        [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        if tensor_type.HasField("shape") else None
    )
    batch = dims[0] if dims else None
    if input_shape is None:
        if dims is None or len(dims) < 2 or any(d is None or d <= 0 for d in dims[1:]):
            shown = "unknown" if dims is None else [d if d else "?" for d in dims]
            raise ValueError(
                f"ONNX input {inp.name!r} has no static per-sample shape (dims {shown}); "
                "pass input_shape"
            )
        return tuple(dims[1:]), batch
    shape = tuple(int(d) for d in input_shape)
    if dims is not None and (
        len(dims) != len(shape) + 1
        or any(d not in (None, 0, s) for d, s in zip(dims[1:], shape, strict=True))
    ):
        raise ValueError(
            f"input_shape {shape} does not match ONNX input {inp.name!r} of dims "
            f"{[d if d else '?' for d in dims]} (the first is the batch dim)"
        )
    return shape, batch


def onnx_to_fx(
    model: onnx.ModelProto, input_shape: tuple[int, ...] | None = None
) -> torch.fx.GraphModule:
    """Rebuild ``model`` (as returned by :func:`read_model`) as an eval-mode ``GraphModule``
    of standard torch modules and functions, for per-sample ``input_shape`` (see
    :func:`input_shape_of`).

    Raises ``ValueError`` naming the node for an op or attribute outside the supported set.
    """
    opset = _check_opset(model)
    graph = model.graph
    shape, batch = input_shape_of(model, input_shape)
    b = Builder(graph, batch, opset)
    inp = _graph_input(graph)
    b.set(inp.name, Value(b.fx.placeholder("x"), torch.zeros(1, *shape)))
    b.input_chain.add(inp.name)
    for node in graph.node:
        handler = HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if handler is None:
            raise unsupported_op(node)
        try:
            handler(b, node)
        except RuntimeError as exc:
            raise node_error(node, f"cannot be applied to its input: {exc}") from exc
        except (KeyError, IndexError, AttributeError, TypeError) as exc:  # a damaged file
            raise node_error(node, f"malformed node ({type(exc).__name__}: {exc})") from exc
    out = graph.output[0].name
    if out not in b.values:
        raise ValueError(f"the ONNX graph output {out!r} is a constant, not computed from inputs")
    b.fx.output(b.values[out].node)
    gm = torch.fx.GraphModule(b.root, b.fx, class_name="OnnxGraph")
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm.eval()


def load_onnx(
    source: str | PathLike[str] | bytes | onnx.ModelProto,
    input_shape: tuple[int, ...] | None = None,
) -> Network:
    """Load an ONNX model (path, bytes or ``ModelProto``) as a canonical :class:`Network`.

    ``input_shape`` is the per-sample input shape; by default the ONNX input's static dims
    after the batch dim (``ValueError`` if they are symbolic).
    """
    model = read_model(source)
    gm = onnx_to_fx(model, input_shape)
    return capture(gm, input_shape_of(model, input_shape)[0])
