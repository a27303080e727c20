"""Connection tables of the sigma-delta program: one layer's (source, target, weight)
triples, CSR row pointers, biases, and the sparse composition of layers without neurons
between them (see :mod:`spikecast.schemes.sigma_delta.program`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from spikecast.ir.graph import AvgPool2d, Conv2d, Layer, Linear, MaxPool2d, Stage

MAX_COMPOSED_SYNAPSES = 50_000_000
SUPPORTED_LAYERS = (
    "Linear, Conv2d, AvgPool2d, MaxPool2d, Flatten, Add, Concat "
    "(ReLU after synaptic layers and Add)"
)


def conv_table(
    weight: np.ndarray, in_shape: tuple[int, ...], stride: tuple[int, int],
    padding: tuple[int, int], groups: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source, target, weight) triples of a cross-correlation with ``groups`` channel
    groups (output channel co reads input channel ci iff both are in group g, through
    weight[co, ci - g c_in / groups]), source-major order."""
    c_in, h, w = in_shape
    c_out, _, kh, kw = weight.shape
    sh, sw = stride
    ph, pw = padding
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    ci, yi, xi, co, ky, kx = np.meshgrid(
        np.arange(c_in), np.arange(h), np.arange(w), np.arange(c_out), np.arange(kh),
        np.arange(kw), indexing="ij",
    )
    ny, nx = yi + ph - ky, xi + pw - kx
    ok = (ny % sh == 0) & (nx % sw == 0)
    oy, ox = ny // sh, nx // sw
    ok &= (oy >= 0) & (oy < ho) & (ox >= 0) & (ox < wo)
    per_in, per_out = c_in // groups, c_out // groups
    if groups > 1:
        ok &= ci // per_in == co // per_out
    ci, yi, xi, co, ky, kx, oy, ox = (a[ok] for a in (ci, yi, xi, co, ky, kx, oy, ox))
    src = (ci * h + yi) * w + xi
    tgt = (co * ho + oy) * wo + ox
    wt = weight[co, ci % per_in, ky, kx]
    return src, tgt, wt


def layer_table(
    layer: Layer, in_shape: tuple[int, ...], name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(layer, Linear):
        w = layer.weight.detach().double().cpu().numpy()
        n_out, n_in = w.shape
        src = np.repeat(np.arange(n_in), n_out)
        return src, np.tile(np.arange(n_out), n_in), w.T.reshape(-1)
    if isinstance(layer, Conv2d):
        w = layer.weight.detach().double().cpu().numpy()
        return conv_table(w, in_shape, layer.stride, layer.padding, layer.groups)
    if isinstance(layer, (AvgPool2d, MaxPool2d)):
        kh, kw = layer.kernel_size
        w = np.full((in_shape[0], 1, kh, kw), 1.0 / (kh * kw))
        return conv_table(w, in_shape, layer.stride, layer.padding, groups=in_shape[0])
    raise ValueError(
        f"layer {name!r} ({type(layer).__name__}) is not supported by the sigma-delta "
        f"simulator; supported: {SUPPORTED_LAYERS}"
    )


def csr_pointers(src: np.ndarray, n_src: int) -> np.ndarray:
    """Row pointers of a source-major table."""
    return np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n_src))]).astype(np.int64)


def stage_bias(stage: Stage) -> np.ndarray:
    n = stage.neurons
    bias = getattr(stage.layer, "bias", None)
    if bias is None:
        return np.zeros(n)
    b = bias.detach().double().cpu().numpy()
    return np.broadcast_to(b.reshape(-1, *([1] * (len(stage.out_shape) - 1))),
                           stage.out_shape).reshape(-1).copy()


@dataclass
class Expr:
    """A stage's value as sum_m W[m] value(node m) + bias; S[m] is the structure of W[m]."""

    w: dict[int, sp.csr_matrix]
    s: dict[int, sp.csr_matrix]
    bias: np.ndarray

    def apply(self, t: sp.csr_matrix, t_struct: sp.csr_matrix, b: np.ndarray) -> Expr:
        return Expr({m: (t @ w).tocsr() for m, w in self.w.items()},
                     {m: (t_struct @ s).tocsr() for m, s in self.s.items()}, t @ self.bias + b)


def sum_exprs(parts: list[Expr], n: int) -> Expr:
    out = Expr({}, {}, np.zeros(n))
    for p in parts:
        for m in p.w:
            out.w[m] = out.w[m] + p.w[m] if m in out.w else p.w[m]
            out.s[m] = out.s[m] + p.s[m] if m in out.s else p.s[m]
        out.bias = out.bias + p.bias
    return out


def placement(n_out: int, offset: int, n_in: int, scale: float) -> tuple:
    rows = np.arange(offset, offset + n_in)
    shape = (n_out, n_in)
    w = sp.csr_matrix((np.full(n_in, scale), (rows, np.arange(n_in))), shape=shape)
    s = sp.csr_matrix((np.ones(n_in), (rows, np.arange(n_in))), shape=shape)
    return w, s


def composed_table(w: sp.csr_matrix, s: sp.csr_matrix, stage: Stage) -> tuple:
    """Source-major (src, tgt, weight) of a composed projection on its structure ``s``."""
    if s.nnz > MAX_COMPOSED_SYNAPSES:
        raise ValueError(
            f"population {stage.name!r}: composing the synaptic layers without a ReLU in "
            f"front of it gives {s.nnz:,} synapses (limit {MAX_COMPOSED_SYNAPSES:,}); add a "
            "ReLU between them or make them smaller"
        )
    st = s.T.tocsr()
    st.sort_indices()
    wt = w.T.tocsr()
    wt.sort_indices()
    src = np.repeat(np.arange(st.shape[0]), np.diff(st.indptr))
    keys = src * st.shape[1] + st.indices
    w_src = np.repeat(np.arange(wt.shape[0]), np.diff(wt.indptr))
    values = np.zeros(len(keys))
    values[np.searchsorted(keys, w_src * wt.shape[1] + wt.indices)] = wt.data
    return src, st.indices.astype(np.int64), values, None
