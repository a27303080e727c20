"""Global and adaptive average pooling in traced models: both are an exact AvgPool2d
when the output size divides the input size."""

from __future__ import annotations

import torch.fx

from spikecast.frontends.fx_common import unsupported
from spikecast.ir.graph import AvgPool2d, Flatten, Layer


def adaptive_avg_pool(node: torch.fx.Node, output_size: object) -> AvgPool2d:
    """AdaptiveAvgPool2d to (oh, ow) of an (H, W) input: AvgPool2d with kernel = stride =
    (H / oh, W / ow) when oh divides H and ow divides W (None keeps that size)."""
    in_shape = tuple(node.args[0].meta["tensor_meta"].shape[2:])
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    out = tuple(d if o is None else int(o) for o, d in zip(size, in_shape, strict=True))
    if any(o <= 0 or d % o for o, d in zip(out, in_shape, strict=True)):
        raise unsupported(
            node, "adaptive_avg_pool2d",
            f"output size {out} does not divide the input {in_shape}; use an AvgPool2d, or an "
            "output size that divides the input (then it is an exact AvgPool2d)",
        )
    kernel = (in_shape[0] // out[0], in_shape[1] // out[1])
    return AvgPool2d(kernel, kernel)


def spatial_mean(node: torch.fx.Node) -> list[Layer]:
    """x.mean((2, 3)) of (N, C, H, W): an AvgPool2d over (H, W), then Flatten unless keepdim."""
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
    shape = tuple(node.args[0].meta["tensor_meta"].shape)
    axes = sorted(d % len(shape) for d in (dims if isinstance(dims, (list, tuple)) else [dims]))
    if len(shape) != 4 or axes != [2, 3] or "dtype" in node.kwargs:
        raise unsupported(node, "mean", f"dims {dims} of a rank-{len(shape)} tensor; only the "
                                         "spatial mean over (2, 3) of (N, C, H, W)")
    pool = AvgPool2d(tuple(shape[2:]), tuple(shape[2:]))
    return [pool] if keep else [pool, Flatten()]
