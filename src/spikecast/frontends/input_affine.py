"""Input normalization inside a model, folded into the first synaptic layer.

A model may transform its input by constants before the first layer, e.g.
``(x - mean) / std`` or ``x * 2 - 1``. While tracing, such a value is kept as an affine map
of the input, x' = a x + c (a and c broadcast to the per-sample input shape, numbers,
tensors, buffers); the Linear or Conv2d that reads it absorbs the map:

* Linear: W' = W diag(a), b' = b + W c;
* Conv2d: a and c must be constant within each input channel;
  W'[o, i] = W[o, i] a_i and b'_o = b_o + sum_{i, kh, kw} W[o, i, kh, kw] c_i. The shift is
  exact without padding only: zero padding of x' would be -c/a in units of x, which no
  per-channel bias expresses, so a shifted input into a zero-padded Conv2d is refused;
* a Flatten in between reshapes a and c.

spikecast simulates the raw input x (in [0, 1]); the folded network computes the same
function as the model (up to float rounding of the folded weights).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace

import torch
import torch.fx

from spikecast.frontends.fx_common import tensor_inputs
from spikecast.ir.graph import INPUT, Conv2d, Flatten, Layer, Linear

ADD_OPS = (operator.add, operator.iadd, torch.add, "add", "add_")
SUB_OPS = (operator.sub, operator.isub, torch.sub, torch.subtract, "sub", "sub_")
MUL_OPS = (operator.mul, operator.imul, torch.mul, torch.multiply, "mul", "mul_")
DIV_OPS = (operator.truediv, operator.itruediv, torch.div, torch.divide, torch.true_divide,
           "div", "div_")
ELEMENTWISE = ADD_OPS + SUB_OPS + MUL_OPS + DIV_OPS


@dataclass(frozen=True, eq=False)
class InputAffine:
    """x' = scale x + shift, both of shape ``(*input_shape)``; ``ops`` names the nodes."""

    scale: torch.Tensor
    shift: torch.Tensor
    ops: tuple[str, ...]

    @classmethod
    def identity(cls, shape: tuple[int, ...]) -> InputAffine:
        return cls(torch.ones(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64),
                   ())

    def then(self, target: object, const: torch.Tensor, const_first: bool,
             name: str) -> InputAffine:
        """This map followed by ``target`` (an add, sub, mul or div) with a constant."""
        shape = self.scale.shape
        try:
            c = torch.broadcast_to(torch.as_tensor(const, dtype=torch.float64), (1, *shape))[0]
        except RuntimeError as exc:
            got = tuple(torch.as_tensor(const).shape)
            raise ValueError(f"node {name!r}: constant of shape {got} does not broadcast to "
                             f"the per-sample input {tuple(shape)}") from exc
        a, b, ops = self.scale, self.shift, (*self.ops, name)
        if target in ADD_OPS:
            return InputAffine(a, b + c, ops)
        if target in SUB_OPS:
            return InputAffine(-a, c - b, ops) if const_first else InputAffine(a, b - c, ops)
        if target in MUL_OPS:
            return InputAffine(a * c, b * c, ops)
        if const_first:
            raise ValueError(f"node {name!r}: a constant divided by the input is not affine; "
                             "spikecast folds x / c, not c / x")
        return InputAffine(a / c, b / c, ops)

    def flattened(self) -> InputAffine:
        return InputAffine(self.scale.reshape(-1), self.shift.reshape(-1), self.ops)

    @property
    def is_identity(self) -> bool:
        return bool(torch.all(self.scale == 1) and torch.all(self.shift == 0))


def _per_channel(t: torch.Tensor, what: str, layer_name: str, ops: tuple[str, ...]) -> torch.Tensor:
    if t.dim() != 3 or not torch.all(t == t[:, :1, :1]):
        raise ValueError(
            f"input normalization {list(ops)} before Conv2d {layer_name!r}: its {what} varies "
            "within a channel; spikecast folds per-channel normalization into a convolution"
        )
    return t[:, 0, 0]


def _bias(layer: Linear | Conv2d, extra: torch.Tensor) -> torch.Tensor | None:
    """b + extra (float64 sum); None when the layer has no bias and extra is 0."""
    if layer.bias is None:
        return None if torch.all(extra == 0) else extra.float()
    return (layer.bias.double() + extra).float()


def fold_input_affine(layer: Layer, affine: InputAffine, layer_name: str) -> Layer:
    """``layer`` (a Linear or Conv2d) reading a x + c rewritten to read x (module docstring)."""
    if isinstance(layer, Linear):
        w = layer.weight.double()
        return Linear((w * affine.scale).float(), _bias(layer, w @ affine.shift))
    if isinstance(layer, Conv2d):
        a = _per_channel(affine.scale, "scale", layer_name, affine.ops)
        c = _per_channel(affine.shift, "shift", layer_name, affine.ops)
        if torch.any(c != 0) and any(layer.padding):
            raise ValueError(
                f"input normalization {list(affine.ops)} shifts the input of the zero-padded "
                f"Conv2d {layer_name!r} (padding {layer.padding}): the padding would be "
                "-shift/scale in input units, which no bias expresses. Normalize outside the "
                "model (scale-only normalization, e.g. x / std, folds), or pad explicitly"
            )
        w = layer.weight.double()
        groups = layer.groups
        per_group = w.shape[1]
        c_in = c.reshape(groups, per_group)
        a_in = a.reshape(groups, per_group)
        out_group = torch.arange(w.shape[0]) // (w.shape[0] // groups)
        a_w = a_in[out_group][:, :, None, None]
        c_w = c_in[out_group][:, :, None, None]
        extra = (w * c_w).sum((1, 2, 3))
        return replace(layer, weight=(w * a_w).float(), bias=_bias(layer, extra))
    raise ValueError(
        f"input normalization {list(affine.ops)} feeds {type(layer).__name__} "
        f"{layer_name!r}; spikecast folds it into a first Linear or Conv2d only"
    )


def constant_value(
    node: torch.fx.Node, consts: dict[torch.fx.Node, torch.Tensor], gm: torch.fx.GraphModule
) -> torch.Tensor | None:
    """The value of a node computed from constants only (a buffer, torch.tensor(...), a
    reshaped buffer), else None."""
    if node.op == "get_attr":
        value = gm
        for part in str(node.target).split("."):
            value = getattr(value, part)
        return torch.as_tensor(value).detach()
    if node.op not in ("call_function", "call_method"):
        return None
    nodes = tensor_inputs(node)
    if any(a not in consts for a in nodes):
        return None
    args = torch.fx.node.map_arg(node.args, lambda a: consts[a])
    kwargs = torch.fx.node.map_arg(node.kwargs, lambda a: consts[a])
    with torch.no_grad():
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        return node.target(*args, **kwargs)


def input_transform(
    node: torch.fx.Node, consts: dict[torch.fx.Node, torch.Tensor],
    affine: dict[torch.fx.Node, InputAffine], value: dict[torch.fx.Node, int],
    input_shape: tuple[int, ...],
) -> InputAffine | None:
    """``node`` as an affine map of the network input (x + c, c - x, x * c, x / c on the
    input or on such a map), else None."""
    if node.target not in ELEMENTWISE or node.kwargs or len(node.args) != 2:
        return None
    lhs, rhs = node.args
    for tensor, const, const_first in ((lhs, rhs, False), (rhs, lhs, True)):
        if not isinstance(tensor, torch.fx.Node) or tensor in consts:
            continue
        if isinstance(const, torch.fx.Node):
            if const not in consts:
                continue
            const = consts[const]
        elif not isinstance(const, (int, float)):
            continue
        if tensor in affine:
            base = affine[tensor]
        elif value.get(tensor) == INPUT:
            base = InputAffine.identity(tuple(input_shape))
        else:
            return None
        return base.then(node.target, const, const_first, node.name)
    return None


def absorb(
    node: torch.fx.Node, result: object, operands: list[torch.fx.Node],
    affine: dict[torch.fx.Node, InputAffine], name: str,
) -> object:
    """``result`` (what capture makes of ``node``: a layer, layers, a marker or None) with
    the input normalization of its operand folded in; a Flatten or a dropped node passes
    the normalization on to its own readers."""
    pending = [affine[a] for a in operands if a in affine]
    if not pending:
        return result
    if len(operands) == 1 and (result is None or isinstance(result, Flatten)):
        affine[node] = pending[0] if result is None else pending[0].flattened()
        return result
    if len(operands) == 1 and isinstance(result, (Linear, Conv2d)):
        return fold_input_affine(result, pending[0], name)
    what = type(result).__name__ if result is not None else node.target
    raise ValueError(
        f"node {node.name!r}: the normalized input {list(pending[0].ops)} feeds {what}; "
        "spikecast folds input normalization into the first Linear or Conv2d only"
    )
