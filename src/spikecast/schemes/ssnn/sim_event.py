"""Exact continuous-time, event-driven simulation of the SSNN circuit (no time step).

Between events (PWM edges, spike-pulse ends, refractory ends, threshold crossings and
readout checkpoints) every synapse current is constant, so each membrane is linear in time:
V(t + s) = max(0, V(t) + s I / C) (the floor at 0 is exact for a linear segment), and the
next crossing is t + (V_th - V) C / I. The simulator jumps from event to event; a neuron
within 1e-12 V_th of its threshold at an event time fires (float round-off of the solved
crossing time). Events at the same instant are handled in the order: pulse ends, refractory
ends, PWM edges, then crossings layer by layer (a spike raises the next layer's current at
once). Inputs with identical PWM signals (same duty and phase, e.g. the background
pixels of an image under aligned phases) are merged into one source, which is exact.
Samples run in parallel threads (numba ``prange``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch

from spikecast.schemes.ssnn.network import CircuitNetwork

CROSSING_TOLERANCE = 1e-12


@dataclass(frozen=True)
class EventResult:
    """Per-sample spike counts of every layer's neurons, and the output layer's counts and
    membrane potentials at each checkpoint time (B, K, n_out)."""

    counts: list[torch.Tensor]
    checkpoint_counts: torch.Tensor
    checkpoint_v: torch.Tensor
    checkpoints: torch.Tensor


@dataclass(frozen=True)
class SampleRecord:
    """One sample in detail: spike times per neuron (global index, NaN-padded) and the exact
    piecewise-linear membrane trace (t, V) of the traced neurons."""

    spike_times: np.ndarray
    trace_t: np.ndarray
    trace_v: np.ndarray


@dataclass(frozen=True)
class _Flat:
    """The network as flat arrays for the kernel: weights transposed to (n_src, n_out)."""

    w_flat: np.ndarray
    w_off: np.ndarray
    sizes: np.ndarray
    starts: np.ndarray
    bias: np.ndarray
    vth: np.ndarray


def _flatten(net: CircuitNetwork) -> _Flat:
    w_t = [w.T.contiguous().numpy().ravel() for w in net.weights]
    offsets = np.cumsum([0] + [len(w) for w in w_t])[:-1]
    sizes = np.array(net.sizes, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return _Flat(
        np.concatenate(w_t),
        offsets.astype(np.int64),
        sizes,
        starts,
        np.concatenate([b.numpy() for b in net.biases]).astype(np.float64),
        np.concatenate([v.numpy() for v in net.v_th]).astype(np.float64),
    )


@numba.njit(cache=True)
def _input_edges(duty, phase, period, window):
    """Sorted PWM edge times in (0, window) with signed source (i + 1 rising, -(i + 1) falling),
    and which inputs are high at t = 0."""
    n_in = duty.shape[0]
    n_periods = int(np.ceil(window / period)) + 2
    times = np.empty(2 * n_in * n_periods)
    source = np.empty(2 * n_in * n_periods, dtype=np.int64)
    high0 = np.zeros(n_in, dtype=np.bool_)
    n = 0
    for i in range(n_in):
        on = duty[i] * period
        if on <= 0.0:
            continue
        if on >= period:
            high0[i] = True
            continue
        for k in range(-1, n_periods):
            rise = phase[i] + k * period
            fall = rise + on
            if rise <= 0.0 < fall:
                high0[i] = True
            if 0.0 < rise < window:
                times[n] = rise
                source[n] = i + 1
                n += 1
            if 0.0 < fall < window:
                times[n] = fall
                source[n] = -(i + 1)
                n += 1
    order = np.argsort(times[:n], kind="mergesort")
    return times[:n][order], source[:n][order], high0


@numba.njit(cache=True)
def _group_inputs(duty, phase, w_flat, w_off, n_out):
    """Merge inputs with identical PWM signals (same duty and phase) into one source whose
    weight row is the sum of theirs: exact, and far fewer edges for aligned phases."""
    n_in = duty.shape[0]
    order = np.argsort(duty * 4.0 + phase / (phase.max() + 1.0), kind="mergesort")
    group_duty = np.empty(n_in)
    group_phase = np.empty(n_in)
    rows = np.zeros((n_in, n_out))
    g = -1
    for k in range(n_in):
        i = order[k]
        if g < 0 or duty[i] != group_duty[g] or phase[i] != group_phase[g]:
            g += 1
            group_duty[g] = duty[i]
            group_phase[g] = phase[i]
        base = w_off + i * n_out
        for j in range(n_out):
            rows[g, j] += w_flat[base + j]
    return group_duty[:g + 1], group_phase[:g + 1], rows[:g + 1].ravel()


@numba.njit(cache=True)
def _add_source(current, w_flat, w_off, n_src_out, start_out, src, sign):
    base = w_off + src * n_src_out
    for j in range(n_src_out):
        current[start_out + j] += sign * w_flat[base + j]


@numba.njit(cache=True)
def _record(rows, t, v, trace_t, trace_v, trace_idx):  # pragma: no cover - compiled
    """Append (t, v[trace_idx]) as trace row ``rows``; -1 once the buffer is full (or
    recording is off: no traced neurons or rows < 0)."""
    if trace_idx.shape[0] == 0 or rows < 0:
        return rows
    if rows >= trace_t.shape[0]:
        return -1
    trace_t[rows] = t
    for k in range(trace_idx.shape[0]):
        trace_v[rows, k] = v[trace_idx[k]]
    return rows + 1


@numba.njit(cache=True)
def _simulate(duty, phase, period, window, width, t_refr, v_init, w_flat, w_off, sizes, starts,
              bias, vth, checkpoints, counts, cp_counts, cp_v, spike_times, trace_idx,
              trace_t, trace_v):
    """One sample; fills counts (N,), cp_counts/cp_v (K, n_out), spike_times (N, S) and the
    trace buffers (rows used returned; -1 if the trace buffer overflowed)."""
    n_layers = sizes.shape[0]
    n = bias.shape[0]
    n_out = sizes[n_layers - 1]
    out0 = starts[n_layers - 1]
    layer_of = np.empty(n, dtype=np.int64)
    for layer in range(n_layers):
        layer_of[starts[layer]:starts[layer] + sizes[layer]] = layer
    v = vth * v_init
    current = bias.copy()
    refr = np.zeros(n, dtype=np.bool_)
    refr_end = np.zeros(n)
    high = np.zeros(n, dtype=np.bool_)
    pulse_end = np.zeros(n)
    g_duty, g_phase, g_rows = _group_inputs(duty, phase, w_flat, w_off[0], sizes[0])
    edge_t, edge_src, high0 = _input_edges(g_duty, g_phase, period, window)
    for i in range(g_duty.shape[0]):
        if high0[i]:
            _add_source(current, g_rows, 0, sizes[0], 0, i, 1.0)
    t = 0.0
    e = 0
    c = 0
    n_edges = edge_t.shape[0]
    n_cp = checkpoints.shape[0]
    rows = 0
    while True:
        t_next = window
        if e < n_edges and edge_t[e] < t_next:
            t_next = edge_t[e]
        if c < n_cp and checkpoints[c] < t_next:
            t_next = checkpoints[c]
        t_cross = np.inf
        first = -1
        for j in range(n):
            if high[j] and pulse_end[j] < t_next:
                t_next = pulse_end[j]
            if refr[j]:
                if refr_end[j] < t_next:
                    t_next = refr_end[j]
            elif current[j] > 0.0:
                tc = t + (vth[j] - v[j]) / current[j]
                if tc < t_cross:
                    t_cross = tc
                    first = j
        if t_cross <= t_next:
            t_next = t_cross
        else:
            first = -1
        step = t_next - t
        for j in range(n):
            if not refr[j]:
                v[j] = max(0.0, v[j] + current[j] * step)
        t = t_next
        rows = _record(rows, t, v, trace_t, trace_v, trace_idx)
        while c < n_cp and checkpoints[c] <= t:
            for k in range(n_out):
                cp_counts[c, k] = counts[out0 + k]
                cp_v[c, k] = v[out0 + k]
            c += 1
        if t >= window:
            break
        for j in range(n):
            if high[j] and pulse_end[j] <= t:
                high[j] = False
                layer = layer_of[j]
                if layer + 1 < n_layers:
                    _add_source(current, w_flat, w_off[layer + 1], sizes[layer + 1],
                                starts[layer + 1], j - starts[layer], -1.0)
            if refr[j] and refr_end[j] <= t:
                refr[j] = False
        while e < n_edges and edge_t[e] <= t:
            src = edge_src[e]
            sign = 1.0 if src > 0 else -1.0
            _add_source(current, g_rows, 0, sizes[0], 0, abs(src) - 1, sign)
            e += 1
        for j in range(n):
            if refr[j] or not (j == first or v[j] >= vth[j] * (1.0 - CROSSING_TOLERANCE)):
                continue
            if spike_times.shape[1] > 0:
                spike_times[j, counts[j]] = t
            counts[j] += 1
            v[j] = 0.0
            refr[j] = True
            refr_end[j] = t + t_refr
            high[j] = True
            pulse_end[j] = t + width
            layer = layer_of[j]
            if layer + 1 < n_layers:
                _add_source(current, w_flat, w_off[layer + 1], sizes[layer + 1],
                            starts[layer + 1], j - starts[layer], 1.0)
        rows = _record(rows, t, v, trace_t, trace_v, trace_idx)
    return rows


@numba.njit(parallel=True, cache=True)
def _simulate_batch(duty, phase, period, window, width, t_refr, v_init, w_flat, w_off, sizes,
                    starts, bias, vth, checkpoints, counts, cp_counts, cp_v):
    no_spikes = np.empty((0, 0))
    no_trace_idx = np.empty(0, dtype=np.int64)
    no_trace_t = np.empty(0)
    no_trace_v = np.empty((0, 0))
    for b in numba.prange(duty.shape[0]):
        _simulate(duty[b], phase, period, window, width, t_refr, v_init, w_flat, w_off, sizes,
                  starts, bias, vth, checkpoints, counts[b], cp_counts[b], cp_v[b], no_spikes,
                  no_trace_idx, no_trace_t, no_trace_v)


def checkpoint_times(window: float, n_points: int) -> torch.Tensor:
    """``n_points`` evenly spaced times ending at the window: window (k + 1) / n_points."""
    if n_points < 1:
        raise ValueError(f"n_points must be >= 1, got {n_points}")
    return torch.arange(1, n_points + 1, dtype=torch.float64) * (window / n_points)


def simulate_events(
    net: CircuitNetwork, duty: torch.Tensor, phase: torch.Tensor, n_points: int = 50
) -> EventResult:
    """Simulate every sample of ``duty`` (B, n_inputs) exactly over the window."""
    p = net.params
    flat = _flatten(net)
    cps = checkpoint_times(p.window, n_points)
    d = np.ascontiguousarray(duty.double().numpy())
    batch, n_out = d.shape[0], net.sizes[-1]
    counts = np.zeros((batch, len(flat.bias)), dtype=np.int64)
    cp_counts = np.zeros((batch, n_points, n_out), dtype=np.int64)
    cp_v = np.zeros((batch, n_points, n_out))
    _simulate_batch(d, phase.double().numpy(), p.encoder.period, p.window, p.spike_width,
                    p.t_refractory, p.v_init, flat.w_flat, flat.w_off, flat.sizes, flat.starts,
                    flat.bias, flat.vth, cps.numpy(), counts, cp_counts, cp_v)
    per_layer = [
        torch.from_numpy(counts[:, s:s + n]) for s, n in zip(flat.starts, flat.sizes, strict=True)
    ]
    return EventResult(per_layer, torch.from_numpy(cp_counts), torch.from_numpy(cp_v), cps)


def record_sample(
    net: CircuitNetwork, duty: torch.Tensor, phase: torch.Tensor, trace: list[int] | None = None
) -> SampleRecord:
    """Spike times of every neuron and the exact membrane trace of neurons ``trace``
    (global indices: layer 1 first) for one sample ``duty`` (n_inputs,)."""
    p = net.params
    flat = _flatten(net)
    n = len(flat.bias)
    idx = np.array(trace or [], dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"trace indices must lie in [0, {n}), got {idx.tolist()}")
    max_spikes = int(p.window / p.t_refractory) + 2
    capacity = 4096
    while True:
        spikes = np.full((n, max_spikes), np.nan)
        trace_t = np.empty(capacity)
        trace_v = np.empty((capacity, idx.size))
        rows = _simulate(np.ascontiguousarray(duty.double().numpy()), phase.double().numpy(),
                         p.encoder.period, p.window, p.spike_width, p.t_refractory, p.v_init,
                         flat.w_flat, flat.w_off, flat.sizes, flat.starts, flat.bias, flat.vth,
                         np.empty(0), np.zeros(n, dtype=np.int64),
                         np.zeros((0, net.sizes[-1]), dtype=np.int64),
                         np.zeros((0, net.sizes[-1])), spikes, idx, trace_t, trace_v)
        if rows >= 0:
            return SampleRecord(spikes, trace_t[:rows], trace_v[:rows])
        capacity *= 4
