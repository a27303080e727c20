"""Vectorised time-slice simulation in torch (batched over frames, runs on any device).

All input spikes with the same timestamp form one slice and are applied together; each
node then updates once per slice, in node (topological) order: a population P receives the
summed charge dv = sum_m A_Pm (dcount_m * theta_m) of every spike of the slice over its
incoming edges (a single-layer edge runs the layer itself, a composed one its sparse table)
and applies its firing rule once (the PAPER rule: at most one spike per neuron per slice, and
only in neurons that received a spike; EXACT: floor(|d| / theta) spikes). Max-pool units take
the max of their sources' counts after the slice. At t = 0 one sweep applies every bias.

How it differs from the event-driven simulator: there, the rule runs after every single
spike, so a neuron whose potential goes up and down within one slice may fire and unfire
(and a max-pool unit may step up and down) where here it does not. Final membrane
potentials still satisfy the same invariant, and both give identical results whenever no
neuron's potential moves both ways within a slice, e.g. with non-negative weights, the EXACT
rule and no bias that fires a neuron negatively on its own (every bias of a neuron without
ReLU above -theta: the event simulator fires such a neuron at t = 0 before the bias-driven
spikes of other neurons reach it, here they arrive in the same sweep), or a single synaptic
layer with one input spike per timestamp.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from spikecast.device import Device, resolve_device
from spikecast.ir.graph import Conv2d, Layer, Linear
from spikecast.schemes.sigma_delta.encoding import check_input
from spikecast.schemes.sigma_delta.neuron import FiringRule, NeuronParams, fire_count
from spikecast.schemes.sigma_delta.program import EdgeKind, NodeKind, Program, float64_layer
from spikecast.schemes.sigma_delta.record import SimRecord
from spikecast.schemes.sigma_delta.sim_event import SimulatorSettings


class _Edge:
    """One SYNAPSES edge m -> d: ``apply`` maps a (batch, n_m) charge to d's (batch, n_d)
    potential change, ``reach`` to positive values exactly at the targets it reaches;
    ``fan`` is the fan-out of each source unit."""

    def __init__(self, program: Program, e: int, device: torch.device) -> None:
        ptr, tgt, wt = program.edge_table(e)
        self.dst = int(program.edge_dst[e])
        self.fan = torch.as_tensor(np.diff(ptr), dtype=torch.float64, device=device)
        stage = program.edge_stage[e]
        if stage is not None:
            self.in_shape = stage.in_shape
            self.layer = _to(float64_layer(stage.layer, with_bias=False), device)
            self.ones = _ones_layer(self.layer)
            return
        self.layer = None
        n_src = len(ptr) - 1
        n_dst = int(program.node_offset[self.dst + 1] - program.node_offset[self.dst])
        rows = torch.as_tensor(tgt, dtype=torch.int64)
        cols = torch.as_tensor(np.repeat(np.arange(n_src), np.diff(ptr)), dtype=torch.int64)
        idx = torch.stack([rows, cols])
        size = (n_dst, n_src)
        self.matrix = torch.sparse_coo_tensor(
            idx, torch.as_tensor(wt, dtype=torch.float64), size, check_invariants=True
        ).coalesce().to(device)
        self.structure = torch.sparse_coo_tensor(
            idx, torch.ones(len(tgt), dtype=torch.float64), size, check_invariants=True
        ).coalesce().to(device)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer is None:
            return torch.sparse.mm(self.matrix, x.T).T
        return self.layer.forward(x.reshape(len(x), *self.in_shape)).reshape(len(x), -1)

    def reach(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer is None:
            return torch.sparse.mm(self.structure, x.abs().T).T
        return self.ones.forward(x.abs().reshape(len(x), *self.in_shape)).reshape(len(x), -1)


class TimeSliceSimulator(SimulatorSettings):
    """Batched slice-by-slice simulation of a :class:`Program`'s network."""

    def __init__(
        self,
        program: Program,
        rule: FiringRule | str = FiringRule.EXACT,
        input_threshold: float = 0.2,
        delay: float = 0.0,
        n_time_points: int = 81,
        device: Device | str = Device.CPU,
        *,
        hysteresis: float = 1.0,
        input_levels: int = 1,
    ) -> None:
        super().__init__(program, rule, input_threshold, delay, n_time_points,
                         hysteresis=hysteresis, input_levels=input_levels)
        self.device = resolve_device(device)
        p = program
        self.incoming: list[list[tuple[int, _Edge]]] = [[] for _ in range(p.n_nodes)]
        self.pools: dict[int, tuple[int, Layer]] = {}
        for m in range(p.n_nodes):
            for e in range(int(p.edge_ptr[m]), int(p.edge_ptr[m + 1])):
                d = int(p.edge_dst[e])
                if p.edge_kind[e] == EdgeKind.SYNAPSES:
                    self.incoming[d].append((m, _Edge(p, e, self.device)))
                else:
                    self.pools[d] = (m, p.node_stage[d].layer)
        self.params = [
            NeuronParams(float(p.node_theta[m]), self.rule, bool(p.node_relu[m]), self.hysteresis)
            if p.node_kind[m] == NodeKind.POPULATION else None
            for m in range(p.n_nodes)
        ]
        self.biases = [
            torch.as_tensor(p.bias[p.node_offset[m] : p.node_offset[m + 1]]).to(self.device)
            for m in range(p.n_nodes)
        ]

    def run(self, x: torch.Tensor, *, batch_size: int = 256) -> SimRecord:
        """Simulate every frame of ``x`` (batch, *input_shape)."""
        check_input(x, self.input_threshold)
        self.program.check_frames(x)
        records = [self._run_batch(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return SimRecord.concat(records)

    def _run_batch(self, x: torch.Tensor) -> SimRecord:
        p = self.program
        b = len(x)
        n_nodes = p.n_nodes
        x = x.to(self.device).reshape(b, -1)
        n_in = self.coding.counts(x).to(torch.float64)
        spike_time = torch.where(n_in > 0, 1.0 - x.to(torch.float64), torch.inf)
        v = [bias.expand(b, -1).clone() for bias in self.biases]
        count = [torch.zeros_like(vm) for vm in v]
        acc = {k: torch.zeros(b, n_nodes, dtype=torch.float64, device=self.device)
               for k in ("pos", "neg", "updates", "updates_in", "pool")}
        self._sweep(torch.zeros_like(n_in), v, count, acc, initial=True)
        grid = torch.as_tensor(self.grid, device=self.device)
        slices = torch.unique(spike_time[torch.isfinite(spike_time)])
        n_grid = len(self.grid)
        n_out = count[-1].shape[1]
        q_at = torch.zeros(b, n_grid, n_out, dtype=torch.float64, device=self.device)
        v_at = torch.zeros_like(q_at)
        spikes_at = torch.zeros(b, n_grid, dtype=torch.float64, device=self.device)
        updates_at = torch.zeros_like(spikes_at)
        k = 0
        for g in range(n_grid + 1):
            limit = grid[g] if g < n_grid else torch.inf
            while k < len(slices) and slices[k] <= limit:
                d_in = (spike_time == slices[k]) * n_in
                count[0] += d_in
                self._sweep(d_in, v, count, acc, initial=False)
                k += 1
            if g < n_grid:
                q_at[:, g] = count[-1]
                v_at[:, g] = v[-1]
                spikes_at[:, g] = (acc["pos"] + acc["neg"]).sum(1)
                updates_at[:, g] = acc["updates"].sum(1)
        cpu = {name: t.cpu().numpy().astype(np.int64) for name, t in acc.items()}
        return SimRecord(
            self.grid + self.hops * self.delay,
            _int(q_at), v_at.cpu().numpy(), _int(spikes_at), _int(updates_at),
            cpu["pos"], cpu["neg"], cpu["updates"], cpu["pool"],
            count[0].sum(1).cpu().numpy().astype(np.int64),
            v[-1].cpu().numpy(), count[-1].cpu().numpy().astype(np.int64), cpu["updates_in"],
        )

    def _sweep(self, delta: torch.Tensor, v: list, count: list, acc: dict, initial: bool) -> None:
        """Propagate node 0's count change ``delta`` through every node once, in order
        (``None``: no change)."""
        b = len(delta)
        p = self.program
        deltas: list[torch.Tensor | None] = [delta if initial or bool(delta.any()) else None]
        for m in range(1, p.n_nodes):
            if m in self.pools:
                src, layer = self.pools[m]
                if deltas[src] is None:
                    deltas.append(None)
                    continue
                shaped = count[src].reshape(b, *p.node_shape[src])
                new = layer.forward(shaped).reshape(b, -1)
                change = new - count[m]
                count[m] = new
                acc["pool"][:, m] += change.abs().sum(1)
                deltas.append(change)
                continue
            live = [(s, edge) for s, edge in self.incoming[m] if deltas[s] is not None]
            if not initial and not live:
                deltas.append(None)
                continue
            params = self.params[m]
            reached = torch.zeros_like(v[m], dtype=torch.bool)
            for s, edge in live:
                d = deltas[s]
                used = (d.abs() * edge.fan.reshape(1, -1)).sum(1)
                acc["updates"][:, s] += used
                acc["updates_in"][:, m] += used
                v[m] += edge.apply(d * float(p.node_theta[s]))
                if params.rule is FiringRule.PAPER and not initial:
                    reached |= edge.reach(d) > 0
            n = fire_count(v[m], count[m], params)
            if params.rule is FiringRule.PAPER and not initial:
                n = n * reached
            count[m] += n
            acc["pos"][:, m] += n.clamp(min=0).sum(1)
            acc["neg"][:, m] += (-n).clamp(min=0).sum(1)
            deltas.append(n if initial or bool(n.any()) else None)


def _ones_layer(layer: Layer) -> Layer:
    """The same connectivity with every weight 1 (which targets a spike reaches)."""
    if isinstance(layer, (Linear, Conv2d)):
        return replace(layer, weight=torch.ones_like(layer.weight))
    return layer


def _to(layer: Layer, device: torch.device) -> Layer:
    if isinstance(layer, (Linear, Conv2d)):
        return replace(layer, weight=layer.weight.to(device))
    return layer


def _int(t: torch.Tensor) -> np.ndarray:
    return t.cpu().numpy().round().astype(np.int64)
