"""Vectorised time-slice simulation in torch (batched over frames, runs on any device).

All input spikes with the same timestamp form one slice and are applied together; each
node then updates once per slice: a population receives the summed charge
dv = W (dcount_prev * theta_prev) of every spike of the slice and applies its firing rule
once (the PAPER rule: at most one spike per neuron per slice, and only in neurons that
received a spike; EXACT: floor(|d| / theta) spikes). Max-pool units take the max of their
sources' counts after the slice. At t = 0 one sweep applies every bias.

How it differs from the event-driven simulator: there, the rule runs after every single
spike, so a neuron whose potential goes up and down within one slice may fire and unfire
(and a max-pool unit may step up and down) where here it does not. Final membrane
potentials still satisfy the same invariant, and both give identical results whenever no
neuron's potential moves both ways within a slice, e.g. with non-negative weights and the
EXACT rule, or a single synaptic layer with one input spike per timestamp.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from spikecast.graph import Conv2d, Layer, Linear, MaxPool2d
from spikecast.metrics import fan_out
from spikecast.sigma_delta.encoding import check_input
from spikecast.sigma_delta.event_sim import SimulatorSettings
from spikecast.sigma_delta.neuron import FiringRule, NeuronParams, fire_count
from spikecast.sigma_delta.program import NodeKind, Program, float64_layer
from spikecast.sigma_delta.record import SimRecord


class TimeSliceSimulator(SimulatorSettings):
    """Batched slice-by-slice simulation of a :class:`Program`'s network."""

    def __init__(
        self,
        program: Program,
        rule: FiringRule | str = FiringRule.EXACT,
        input_threshold: float = 0.2,
        delay: float = 0.0,
        n_time_points: int = 81,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(program, rule, input_threshold, delay, n_time_points)
        self.device = torch.device(device)
        self.stages = list(program.node_stage[1:])
        self.layers = [
            _to(float64_layer(s.layer, with_bias=False), self.device) for s in self.stages
        ]
        self.reach = [_ones_layer(layer) for layer in self.layers]
        self.fans = [
            None if isinstance(s.layer, MaxPool2d)
            else fan_out(s.layer, s.in_shape).double().to(self.device)
            for s in self.stages
        ]
        self.params = [
            NeuronParams(float(program.node_theta[m]), self.rule, bool(program.node_relu[m]))
            if program.node_kind[m] == NodeKind.POPULATION else None
            for m in range(program.n_nodes)
        ]
        self.biases = [
            torch.as_tensor(program.bias[program.node_offset[m] : program.node_offset[m + 1]])
            .to(self.device) for m in range(program.n_nodes)
        ]

    def run(self, x: torch.Tensor, *, batch_size: int = 256) -> SimRecord:
        """Simulate every frame of ``x`` (batch, *input_shape)."""
        check_input(x, self.input_threshold)
        records = [self._run_batch(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return SimRecord.concat(records)

    def _run_batch(self, x: torch.Tensor) -> SimRecord:
        p = self.program
        b = len(x)
        n_nodes = p.n_nodes
        x = x.to(self.device).reshape(b, -1)
        fires = x > self.input_threshold
        x = x.to(torch.float64)
        spike_time = torch.where(fires, 1.0 - x, torch.inf)
        v = [bias.expand(b, -1).clone() for bias in self.biases]
        count = [torch.zeros_like(vm) for vm in v]
        acc = {k: torch.zeros(b, n_nodes, dtype=torch.float64, device=self.device)
               for k in ("pos", "neg", "updates", "pool")}
        self._sweep(torch.zeros_like(x), v, count, acc, initial=True)
        grid = torch.as_tensor(self.grid, device=self.device)
        slices = torch.unique(spike_time[torch.isfinite(spike_time)])
        n_grid = len(self.grid)
        pred_at = torch.zeros(b, n_grid, dtype=torch.long, device=self.device)
        spikes_at = torch.zeros(b, n_grid, dtype=torch.float64, device=self.device)
        updates_at = torch.zeros_like(spikes_at)
        k = 0
        for g in range(n_grid + 1):
            limit = grid[g] if g < n_grid else torch.inf
            while k < len(slices) and slices[k] <= limit:
                d_in = (spike_time == slices[k]).to(torch.float64)
                count[0] += d_in
                self._sweep(d_in, v, count, acc, initial=False)
                k += 1
            if g < n_grid:
                pred_at[:, g] = _readout(count[-1], v[-1])
                spikes_at[:, g] = (acc["pos"] + acc["neg"]).sum(1)
                updates_at[:, g] = acc["updates"].sum(1)
        cpu = {name: t.cpu().numpy() for name, t in acc.items()}
        return SimRecord(
            self.grid + self.hops * self.delay,
            pred_at.cpu().numpy(), _int(spikes_at), _int(updates_at),
            cpu["pos"].astype(np.int64), cpu["neg"].astype(np.int64),
            cpu["updates"].astype(np.int64), cpu["pool"].astype(np.int64),
            count[0].sum(1).cpu().numpy().astype(np.int64),
            v[-1].cpu().numpy(), count[-1].cpu().numpy().astype(np.int64),
        )

    @property
    def hops(self) -> int:
        return sum(s.synaptic for s in self.stages)

    def _sweep(self, delta: torch.Tensor, v: list, count: list, acc: dict, initial: bool) -> None:
        """Propagate node 0's count change ``delta`` through every stage once."""
        b = len(delta)
        theta_prev = 1.0
        for m, (stage, layer) in enumerate(zip(self.stages, self.layers, strict=True)):
            if not initial and not bool(delta.any()):
                return
            shaped = delta.reshape(b, *stage.in_shape)
            if isinstance(layer, MaxPool2d):
                new = layer.forward(count[m].reshape(b, *stage.in_shape)).reshape(b, -1)
                delta = new - count[m + 1]
                count[m + 1] = new
                acc["pool"][:, m + 1] += delta.abs().sum(1)
                continue
            fan = self.fans[m].reshape(1, -1)
            acc["updates"][:, m] += (delta.abs().reshape(b, -1) * fan).sum(1)
            v[m + 1] += layer.forward(shaped * theta_prev).reshape(b, -1)
            params = self.params[m + 1]
            n = fire_count(v[m + 1], count[m + 1], params)
            if params.rule is FiringRule.PAPER and not initial:
                n = n * (self.reach[m].forward(shaped.abs()).reshape(b, -1) > 0)
            count[m + 1] += n
            acc["pos"][:, m + 1] += n.clamp(min=0).sum(1)
            acc["neg"][:, m + 1] += (-n).clamp(min=0).sum(1)
            delta = n
            theta_prev = params.theta


def _ones_layer(layer: Layer) -> Layer:
    """The same connectivity with every weight 1 (which targets a spike reaches)."""
    if isinstance(layer, (Linear, Conv2d)):
        return replace(layer, weight=torch.ones_like(layer.weight))
    return layer


def _to(layer: Layer, device: torch.device) -> Layer:
    if isinstance(layer, (Linear, Conv2d)):
        return replace(layer, weight=layer.weight.to(device))
    return layer


def _readout(count: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """argmax of count, ties by larger v, then lower index."""
    top = count == count.max(1, keepdim=True).values
    return torch.where(top, v, -torch.inf).argmax(1)


def _int(t: torch.Tensor) -> np.ndarray:
    return t.cpu().numpy().round().astype(np.int64)
