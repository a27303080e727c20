"""Numba kernel of the exact asynchronous event-driven simulation (zero synaptic delay).

One frame at a time, on the flat arrays of :class:`~spikecast.schemes.sigma_delta.program.Program`
(nodes and their outgoing edges). Processing order (the deterministic tie-break):

1. t = 0: every neuron, node by node and in index order, applies its firing rule once to its
   bias; the spikes wait in a FIFO queue (which neurons fire is the same for every frame and
   is computed once, :func:`bias_firing`).
2. Input events in (time, pixel index) order; the n spikes of each are pushed to the queue.
3. After each event, the queue is drained first-in first-out: a spike of node m updates,
   at the same instant, every target of every SYNAPSES edge of m, edge by edge in order of
   the destination node: each target of the edge, in table order, gets v += w * sign *
   theta_m and applies its firing rule right after its own update; then the targets of
   that edge that fired, in table order, send their spikes to the tail of the queue. Max-pool
   units react as soon as a source's count changes (after the source's own spike was
   queued): a unit keeps the largest count in its window and sends one message per step of
   that maximum (sign of the step), queued like a spike.

In a chain the FIFO order is breadth-first, i.e. node by node: the order every neuron
receives its events in is the order they would arrive in with a uniform synaptic delay (see
``event_sim``). Queue entries pack (unit index, node, sign) as ``(j << 7) | (m << 1) | neg``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from spikecast.errors import SpikecastError
from spikecast.schemes.sigma_delta.neuron import FIRE_LIMIT_MESSAGE, MAX_FIRE

RULE_PAPER = 0
RULE_EXACT = 1
_POPULATION = 1
_STACK = 4096


@njit(cache=True)
def fire_count(v, count, theta, relu, rule, band):  # pragma: no cover - compiled
    """Signed spikes for d = f(v) - count * theta (same arithmetic and limit as
    ``neuron.fire_count``): the neuron rests while -band theta <= d < band theta
    (-theta < d < theta at band 1)."""
    act = v
    if relu and act < 0.0:
        act = 0.0
    d = act - count * theta
    if band == 1.0:
        if d >= theta:
            if rule == RULE_PAPER:
                return 1
            n = np.floor(d / theta)
            if n >= MAX_FIRE:
                raise SpikecastError(FIRE_LIMIT_MESSAGE)
            return np.int64(n)
        if d <= -theta:
            if rule == RULE_PAPER:
                return -1
            n = np.floor(-d / theta)
            if n >= MAX_FIRE:
                raise SpikecastError(FIRE_LIMIT_MESSAGE)
            return -np.int64(n)
        return 0
    if d >= band * theta:
        if rule == RULE_PAPER:
            return 1
        n = np.floor((d - band * theta) / theta) + 1
        if n >= MAX_FIRE:
            raise SpikecastError(FIRE_LIMIT_MESSAGE)
        return np.int64(n)
    if d < -band * theta:
        if rule == RULE_PAPER:
            return -1
        n = max(np.ceil((-d - band * theta) / theta), 1.0)
        if n >= MAX_FIRE:
            raise SpikecastError(FIRE_LIMIT_MESSAGE)
        return -np.int64(n)
    return 0


@njit(cache=True)
def _push(fifo, tail, code, n):  # pragma: no cover - compiled
    while tail + n > fifo.shape[0]:
        grown = np.empty(2 * fifo.shape[0], np.int64)
        grown[:tail] = fifo[:tail]
        fifo = grown
    for _ in range(n):
        fifo[tail] = code
        tail += 1
    return fifo, tail


@njit(cache=True)
def _route(m0, j0, n0, q, node_offset, edge_ptr, edge_syn_end, edge_src_ptr_offset,
           edge_win_ptr_offset, src_ptr, target, win_ptr, win_src, fifo, tail, stack,
           pool_msgs):  # pragma: no cover - compiled
    """Node m0's unit j0 changed its count by n0: queue spikes and update max-pool units."""
    stack[0, 0] = m0
    stack[0, 1] = j0
    stack[0, 2] = n0
    sp = 1
    while sp > 0:
        sp -= 1
        m, j, n = stack[sp, 0], stack[sp, 1], stack[sp, 2]
        if edge_syn_end[m] > edge_ptr[m]:
            code = (j << 7) | (m << 1) | (1 if n < 0 else 0)
            fifo, tail = _push(fifo, tail, code, abs(n))
        for edge in range(edge_syn_end[m], edge_ptr[m + 1]):
            d = m + 1  # a node's one max-pool node follows it (see ``program``)
            p0 = src_ptr[edge_src_ptr_offset[edge] + j]
            p1 = src_ptr[edge_src_ptr_offset[edge] + j + 1]
            src_base = node_offset[m]
            dst_base = node_offset[d]
            win_base = edge_win_ptr_offset[edge]
            for e in range(p1 - 1, p0 - 1, -1):
                u = target[e]
                w0 = win_ptr[win_base + u]
                w1 = win_ptr[win_base + u + 1]
                best = q[src_base + win_src[w0]]
                for k in range(w0 + 1, w1):
                    best = max(best, q[src_base + win_src[k]])
                old = q[dst_base + u]
                if best != old:
                    if sp >= stack.shape[0]:
                        raise RuntimeError("sigma-delta kernel: max-pool cascade stack overflow")
                    q[dst_base + u] = best
                    pool_msgs[d] += abs(best - old)
                    stack[sp, 0] = d
                    stack[sp, 1] = u
                    stack[sp, 2] = best - old
                    sp += 1
    return fifo, tail


@njit(cache=True)
def _drain(fifo, tail, v, q, qt, rule, band, node_offset, node_theta, node_relu, edge_ptr,
           edge_syn_end, edge_dst, edge_src_ptr_offset, edge_win_ptr_offset, src_ptr, target,
           weight, win_ptr, win_src, stack, fired, pos, neg, updates, updates_in,
           pool_msgs):  # pragma: no cover - compiled
    """Deliver queued spikes first-in first-out until the network is quiet."""
    head = 0
    while head < tail:
        code = fifo[head]
        head += 1
        m = (code >> 1) & 63
        j = code >> 7
        charge = -node_theta[m] if code & 1 else node_theta[m]
        for edge in range(edge_ptr[m], edge_syn_end[m]):
            d = edge_dst[edge]
            p0 = src_ptr[edge_src_ptr_offset[edge] + j]
            p1 = src_ptr[edge_src_ptr_offset[edge] + j + 1]
            updates[m] += p1 - p0
            updates_in[d] += p1 - p0
            dst = node_offset[d]
            theta = node_theta[d]
            relu = node_relu[d]
            n_fired = 0
            for e in range(p0, p1):
                i = dst + target[e]
                vi = v[i] + weight[e] * charge
                v[i] = vi
                act = 0.0 if relu and vi < 0.0 else vi
                d_q = act - qt[i]
                if band == 1.0:  # no spike: fire_count's own test, qt = q theta
                    if -theta < d_q < theta:
                        continue
                elif -band * theta <= d_q < band * theta:
                    continue
                n = fire_count(vi, q[i], theta, relu, rule, band)
                if n != 0:
                    q[i] += n
                    qt[i] = q[i] * theta
                    fired[n_fired, 0] = target[e]
                    fired[n_fired, 1] = n
                    n_fired += 1
            for k in range(n_fired):
                n = fired[k, 1]
                if n > 0:
                    pos[d] += n
                else:
                    neg[d] -= n
                fifo, tail = _route(d, fired[k, 0], n, q, node_offset, edge_ptr, edge_syn_end,
                                    edge_src_ptr_offset, edge_win_ptr_offset, src_ptr,
                                    target, win_ptr, win_src, fifo, tail, stack, pool_msgs)
    return fifo


@njit(cache=True)
def bias_firing(bias, rule, band, node_offset, node_kind, node_theta,
                node_relu):  # pragma: no cover - compiled
    """(node, unit) of every neuron that fires on its bias alone at t = 0, node by node in
    index order: the same for every frame (v = bias, q = 0), so computed once."""
    n = 0
    out = np.empty((node_offset[-1], 2), np.int64)
    for m in range(1, node_kind.shape[0]):
        if node_kind[m] != _POPULATION:
            continue
        for i in range(node_offset[m], node_offset[m + 1]):
            if fire_count(bias[i], 0, node_theta[m], node_relu[m], rule, band) != 0:
                out[n, 0] = m
                out[n, 1] = i
                n += 1
    return out[:n].copy()


@njit(cache=True)
def run_frame(v, q, ev_index, ev_count, ev_time, grid, rule, band, t0_units, node_offset, node_kind,
              node_theta, node_relu, bias, edge_ptr, edge_syn_end, edge_dst, edge_src_ptr_offset,
              edge_win_ptr_offset, src_ptr, target, weight, win_ptr, win_src, fired_cap, q_at,
              v_at, spikes_at, updates_at, pos, neg, updates, updates_in,
              pool_msgs):  # pragma: no cover - compiled
    """Simulate one frame in the buffers ``v`` and ``q`` (all nodes concatenated), which
    start at v = bias, q = 0 and hold the final state; ``t0_units`` is :func:`bias_firing`
    of the same arrays; fills the per-frame output rows in place (see module docstring)."""
    v[:] = bias
    q[:] = 0
    n_nodes = node_kind.shape[0]
    fifo = np.empty(4096, np.int64)
    tail = 0
    stack = np.empty((_STACK, 3), np.int64)
    fired = np.empty((fired_cap, 2), np.int64)
    qt = np.zeros(q.shape[0])  # q * theta of every population neuron, kept in step with q
    for k in range(t0_units.shape[0]):
        m, i = t0_units[k, 0], t0_units[k, 1]
        n = fire_count(v[i], q[i], node_theta[m], node_relu[m], rule, band)
        q[i] += n
        qt[i] = q[i] * node_theta[m]
        if n > 0:
            pos[m] += n
        else:
            neg[m] -= n
        fifo, tail = _route(m, i - node_offset[m], n, q, node_offset, edge_ptr,
                            edge_syn_end, edge_src_ptr_offset, edge_win_ptr_offset, src_ptr,
                            target, win_ptr, win_src, fifo, tail, stack, pool_msgs)
    lo = node_offset[n_nodes - 1]
    hi = node_offset[n_nodes]
    p = 0
    n_ev = ev_index.shape[0]
    for g in range(grid.shape[0] + 1):
        limit = grid[g] if g < grid.shape[0] else np.inf
        while p < n_ev and ev_time[p] <= limit:
            j = ev_index[p]
            q[j] += ev_count[p]
            fifo, tail = _route(0, j, ev_count[p], q, node_offset, edge_ptr, edge_syn_end,
                                edge_src_ptr_offset, edge_win_ptr_offset, src_ptr, target,
                                win_ptr, win_src, fifo, tail, stack, pool_msgs)
            p += 1
            if tail > 0:
                fifo = _drain(fifo, tail, v, q, qt, rule, band, node_offset, node_theta, node_relu,
                              edge_ptr, edge_syn_end, edge_dst, edge_src_ptr_offset,
                              edge_win_ptr_offset, src_ptr, target, weight, win_ptr, win_src,
                              stack, fired, pos, neg, updates, updates_in, pool_msgs)
                tail = 0
        if tail > 0:
            fifo = _drain(fifo, tail, v, q, qt, rule, band, node_offset, node_theta, node_relu,
                          edge_ptr, edge_syn_end, edge_dst, edge_src_ptr_offset,
                          edge_win_ptr_offset, src_ptr, target, weight, win_ptr, win_src, stack,
                          fired, pos, neg, updates, updates_in, pool_msgs)
            tail = 0
        if g < grid.shape[0]:
            q_at[g] = q[lo:hi]
            v_at[g] = v[lo:hi]
            spikes_at[g] = pos.sum() + neg.sum()
            updates_at[g] = updates.sum()


@njit(cache=True, nogil=True)
def run_frames(ev_index, ev_ptr, ev_count, ev_time, grid, rule, band, node_offset, node_kind,
               node_theta, node_relu, bias, edge_ptr, edge_syn_end, edge_dst,
               edge_src_ptr_offset, edge_win_ptr_offset, src_ptr, target, weight, win_ptr,
               win_src, fired_cap):  # pragma: no cover - compiled
    """Simulate frames f = 0..F-1 (events ev_*[ev_ptr[f]:ev_ptr[f+1]], ``ev_count`` spikes
    each); releases the GIL so
    callers can run disjoint frame ranges in parallel threads."""
    n_frames = ev_ptr.shape[0] - 1
    n_grid = grid.shape[0]
    n_nodes = node_kind.shape[0]
    n_out = node_offset[n_nodes] - node_offset[n_nodes - 1]
    q_at = np.zeros((n_frames, n_grid, n_out), np.int64)
    v_at = np.zeros((n_frames, n_grid, n_out), np.float64)
    spikes_at = np.zeros((n_frames, n_grid), np.int64)
    updates_at = np.zeros((n_frames, n_grid), np.int64)
    pos = np.zeros((n_frames, n_nodes), np.int64)
    neg = np.zeros((n_frames, n_nodes), np.int64)
    updates = np.zeros((n_frames, n_nodes), np.int64)
    updates_in = np.zeros((n_frames, n_nodes), np.int64)
    pool_msgs = np.zeros((n_frames, n_nodes), np.int64)
    out_v = np.zeros((n_frames, n_out), np.float64)
    out_q = np.zeros((n_frames, n_out), np.int64)
    lo = node_offset[n_nodes - 1]
    t0_units = bias_firing(bias, rule, band, node_offset, node_kind, node_theta, node_relu)
    v = np.empty(node_offset[n_nodes])
    q = np.empty(node_offset[n_nodes], np.int64)
    for f in range(n_frames):
        a, b = ev_ptr[f], ev_ptr[f + 1]
        run_frame(v, q, ev_index[a:b], ev_count[a:b], ev_time[a:b], grid, rule, band, t0_units,
                  node_offset, node_kind, node_theta, node_relu, bias, edge_ptr, edge_syn_end,
                  edge_dst, edge_src_ptr_offset, edge_win_ptr_offset, src_ptr, target, weight,
                  win_ptr, win_src, fired_cap, q_at[f], v_at[f], spikes_at[f], updates_at[f],
                  pos[f], neg[f], updates[f], updates_in[f], pool_msgs[f])
        out_v[f] = v[lo:]
        out_q[f] = q[lo:]
    return (q_at, v_at, spikes_at, updates_at, pos, neg, updates, updates_in, pool_msgs,
            out_v, out_q)
