"""CPU kernels (numba) of the layer-wise rate simulator: the IF scan over a block of steps
and spike-count gated max pooling, each bit for bit the arithmetic of the step-by-step
reference (:func:`spikecast.schemes.rate.neuron.if_step`,
:func:`spikecast.schemes.rate.signals.maxpool_pick`).

Per neuron and step, in float32 (theta rounded to float32, as torch does for a float32
tensor and a Python scalar):

    u = v + I_t;   s = [u >= theta];   v = u - s theta   (subtract)   or   u (1 - s)  (zero)

Neurons are independent, so the only order that matters is the order of steps, which every
kernel keeps. A max-pool unit forwards the spike of the window's input neuron with the
largest key  count x 2^32 + rank(v)  (count so far, this step's spike included; rank: the
order-preserving integer image of the float32 membrane, -0 = +0), the first in row-major
order among equal keys; padding never wins (it points at a key below every real one).

Arrays are C-contiguous float32 unless said otherwise; ``current`` has one row per step, or
a single row when constant. An empty ``membranes`` array (first dimension 0) means "not
wanted".
"""

from __future__ import annotations

import os

import numba
import numpy as np

from spikecast.ir.graph import MaxPool2d

if "NUMBA_THREADING_LAYER" not in os.environ:
    # OpenMP workers busy-wait after each parallel kernel and starve the torch operations
    # that follow on a small machine (100x slower on 2 cores); the workqueue pool sleeps
    numba.config.THREADING_LAYER = "workqueue"

BLOCK = 4096  # neurons per scan task: the block's state stays in the L1/L2 cache
NO_KEY = np.iinfo(np.int64).min  # the key of zero padding


def window_table(layer: MaxPool2d, h: int, w: int) -> np.ndarray:
    """Flat in-plane index of every element of every pooling window, row-major within a
    window, shape (Ho * Wo, kh * kw); padding points at index h * w (the ``NO_KEY`` slot)."""
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    iy = (np.arange(ho) * sh - ph)[:, None] + np.arange(kh)[None, :]  # (Ho, kh)
    ix = (np.arange(wo) * sw - pw)[:, None] + np.arange(kw)[None, :]  # (Wo, kw)
    rows = iy[:, None, :, None]
    cols = ix[None, :, None, :]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    table = np.where(inside, rows * w + cols, h * w)
    return np.ascontiguousarray(table.reshape(ho * wo, kh * kw), dtype=np.int64)


@numba.njit(parallel=True, cache=True)
def if_scan(current, v, counts, theta, zero_reset, spikes, membranes):
    """IF over ``spikes.shape[0]`` steps: current (S, M), v and counts (M,) updated in
    place, spikes (steps, M) and optionally membranes (steps, M) written."""
    steps, m = spikes.shape
    constant = current.shape[0] == 1
    keep = membranes.shape[0] > 0
    for blk in numba.prange((m + BLOCK - 1) // BLOCK):
        lo = blk * BLOCK
        hi = min(lo + BLOCK, m)
        vb = v[lo:hi]
        cb = counts[lo:hi]
        for t in range(steps):
            _scan_step(current[0 if constant else t, lo:hi], vb, cb, theta, zero_reset,
                       spikes[t, lo:hi])
            if keep:
                membranes[t, lo:hi] = vb


@numba.njit(inline="always")
def _scan_step(cur, v, counts, theta, zero_reset, spikes):
    """One IF step of a run of neurons (1-D arrays)."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    if zero_reset:
        for i in range(v.shape[0]):
            u = v[i] + cur[i]
            s = one if u >= theta else zero
            v[i] = u * (one - s)
            counts[i] += s
            spikes[i] = s
    else:
        for i in range(v.shape[0]):
            u = v[i] + cur[i]
            s = one if u >= theta else zero
            v[i] = u - s * theta
            counts[i] += s
            spikes[i] = s


@numba.njit(inline="always")
def _keys(counts, mem, plus, keys):
    """keys[i] = counts[i] x 2^32 + rank(mem[i]) for one plane (keys has one slot more,
    NO_KEY, for padding); ``plus`` is scratch of the plane's size."""
    zero = np.float32(0.0)
    n = counts.shape[0]
    for i in range(n):
        plus[i] = mem[i] + zero  # -0 -> +0
    bits = plus.view(np.int32)
    for i in range(n):
        b = np.int64(bits[i])
        rank = b ^ 0x7FFFFFFF if b < 0 else b
        keys[i] = (np.int64(counts[i]) << 32) + rank
    keys[n] = NO_KEY


@numba.njit(inline="always")
def _pick(keys, table, picks):
    """Index of the largest key of every window (first of equal keys)."""
    k = table.shape[1]
    for o in range(table.shape[0]):
        best_j = table[o, 0]
        best = keys[best_j]
        for q in range(1, k):
            j = table[o, q]
            if keys[j] > best:
                best = keys[j]
                best_j = j
        picks[o] = best_j


@numba.njit(parallel=True, cache=True)
def if_pool_scan(current, v, counts, theta, zero_reset, table, events, membranes):
    """IF population followed by its gated max-pool: current (S, P, H*W), v and counts
    (P, H*W) in place; writes the pooled spikes (steps, P, Ho*Wo) and optionally the
    selected neurons' membranes (same shape)."""
    steps, planes, n_out = events.shape
    n = v.shape[1]
    constant = current.shape[0] == 1
    keep = membranes.shape[0] > 0
    for p in numba.prange(planes):
        spikes = np.empty(n, dtype=np.float32)
        keys = np.empty(n + 1, dtype=np.int64)
        plus = np.empty(n, dtype=np.float32)
        picks = np.empty(n_out, dtype=np.int64)
        vp = v[p]
        cp = counts[p]
        for t in range(steps):
            _scan_step(current[0 if constant else t, p], vp, cp, theta, zero_reset, spikes)
            _keys(cp, vp, plus, keys)
            _pick(keys, table, picks)
            out = events[t, p]
            for o in range(n_out):
                out[o] = spikes[picks[o]]
            if keep:
                mem = membranes[t, p]
                for o in range(n_out):
                    mem[o] = vp[picks[o]]


@numba.njit(parallel=True, cache=True)
def gate_scan(events, membranes, counts, table, picks):
    """Gated max-pool of given spike trains: events and membranes (steps, P, H*W) (an empty
    ``membranes``: all zero), counts (P, H*W) in place; writes the in-plane index each unit
    forwards at every step, picks (steps, P, Ho*Wo) int64."""
    steps, planes, _ = picks.shape
    n = counts.shape[1]
    has_mem = membranes.shape[0] > 0
    for p in numba.prange(planes):
        keys = np.empty(n + 1, dtype=np.int64)
        plus = np.empty(n, dtype=np.float32)
        zeros = np.zeros(n, dtype=np.float32)
        cp = counts[p]
        for t in range(steps):
            ev = events[t, p]
            for i in range(n):
                cp[i] += ev[i]
            _keys(cp, membranes[t, p] if has_mem else zeros, plus, keys)
            _pick(keys, table, picks[t, p])


@numba.njit(cache=True)
def readout(events, membranes, counts, predictions):
    """Readout after every step of a block: events and membranes (steps, B, K) of the output
    population, counts (B, K) its counts after the block; writes predictions (steps, B), the
    neuron with the most spikes so far, ties to the larger membrane, then the lower index."""
    steps, batch, k = events.shape
    running = np.empty(k, dtype=np.float32)
    for b in range(batch):
        for j in range(k):
            running[j] = counts[b, j]
            for t in range(steps):
                running[j] -= events[t, b, j]
        for t in range(steps):
            best = 0
            for j in range(k):
                running[j] += events[t, b, j]
                c, u = running[j], membranes[t, b, j]
                if j and (c > running[best] or (c == running[best] and u > membranes[t, b, best])):
                    best = j
            predictions[t, b] = best
