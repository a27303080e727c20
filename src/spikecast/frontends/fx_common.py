"""Helpers shared by the torch.fx capture modules: the supported list, the refusal naming a
node, int pairs and a node's tensor operands."""

from __future__ import annotations

import torch.fx

SUPPORTED = (
    "Linear, Conv2d (any groups, dilation=1, zero padding), AvgPool2d, MaxPool2d, "
    "AdaptiveAvgPool2d / mean over (H, W) (output size dividing the input), Flatten/"
    "flatten/view/reshape to (batch, -1), ReLU/F.relu/torch.relu, BatchNorm1d/2d after "
    "Linear/Conv2d (folded), Dropout/Identity (dropped), x + y of two tensors (Add), "
    "torch.cat along dim 1 (Concat), +, -, *, / of the input by constants (folded into the "
    "first layer), a final softmax/log_softmax over the classes (dropped)"
)


def pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


def unsupported(node: torch.fx.Node, what: str, detail: str = "") -> ValueError:
    extra = f" ({detail})" if detail else ""
    return ValueError(
        f"node {node.name!r} (op={node.op}, target={what}) is not supported{extra}. "
        f"Supported: {SUPPORTED}"
    )


def tensor_inputs(node: torch.fx.Node) -> list[torch.fx.Node]:
    """The tensor operands of ``node`` (a concatenation's list flattened)."""
    out: list[torch.fx.Node] = []
    for a in (*node.args, *node.kwargs.values()):
        if isinstance(a, torch.fx.Node):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(x for x in a if isinstance(x, torch.fx.Node))
    return out
