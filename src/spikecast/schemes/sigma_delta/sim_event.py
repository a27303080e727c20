"""Exact asynchronous event-driven simulator (wraps the numba kernel in ``kernel``).

Synaptic delay: with a uniform delay d on every synaptic hop (edge), an input spike at time t
reaches population l at t + l d, and spikes triggered by biases reach it before every
input-driven one, so every neuron receives exactly the same event sequence as with zero
delay (the kernel's FIFO is breadth-first). Spike counts are therefore identical and only
the clock moves: the state of the L-hop network at time t + L d equals the zero-delay
state at t. With ``delay > 0`` the reported time points are shifted by L d accordingly.
This needs every path from the input to a node to have the same number of hops; a DAG whose
skip connections break that (a residual block) is refused with ``delay > 0``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from spikecast.schemes.sigma_delta import kernel
from spikecast.schemes.sigma_delta.encoding import InputCoding
from spikecast.schemes.sigma_delta.neuron import FiringRule, band, check_hysteresis
from spikecast.schemes.sigma_delta.program import EdgeKind, Program
from spikecast.schemes.sigma_delta.record import SimRecord, time_points

_RULE_CODE = {FiringRule.PAPER: kernel.RULE_PAPER, FiringRule.EXACT: kernel.RULE_EXACT}


def check_delay(delay: float) -> float:
    delay = float(delay)
    if not delay >= 0:
        raise ValueError(f"synaptic delay must be >= 0 TU, got {delay}")
    return delay


@dataclass(frozen=True)
class FrameState:
    """Final membrane potentials and signed counts of every node (node 0 = input)."""

    v: list[np.ndarray]
    count: list[np.ndarray]


def hop_depths(program: Program) -> list[set[int]]:
    """Per node: the numbers of SYNAPSES edges on the paths from the input to it."""
    depths: list[set[int]] = [set() for _ in range(program.n_nodes)]
    depths[0].add(0)
    for m in range(program.n_nodes):
        for e in range(int(program.edge_ptr[m]), int(program.edge_ptr[m + 1])):
            step = int(program.edge_kind[e] == EdgeKind.SYNAPSES)
            depths[int(program.edge_dst[e])].update(h + step for h in depths[m])
    return depths


class SimulatorSettings:
    """What both sigma-delta simulators share: the program, firing rule, input coding
    (threshold and levels; the program's input node must carry theta_in = 1 / levels),
    synaptic delay, the time grid of the accuracy curve and the hysteresis band."""

    def __init__(
        self,
        program: Program,
        rule: FiringRule | str = FiringRule.EXACT,
        input_threshold: float = 0.2,
        delay: float = 0.0,
        n_time_points: int = 81,
        *,
        hysteresis: float = 1.0,
        input_levels: int = 1,
    ) -> None:
        if not 0.0 <= input_threshold < 1.0:
            raise ValueError(f"input_threshold must be in [0, 1), got {input_threshold}")
        self.program = program
        self.rule = FiringRule(rule)
        self.hysteresis = check_hysteresis(hysteresis)
        self.coding = InputCoding(input_levels, input_threshold)
        if float(program.node_theta[0]) != self.coding.level:
            raise ValueError(
                f"the program's input level is {float(program.node_theta[0])} but "
                f"input_levels={input_levels} needs 1/{input_levels}; build it with "
                "build_program(..., input_level=1 / input_levels)"
            )
        self.input_threshold = input_threshold
        self.delay = check_delay(delay)
        self.grid = time_points(self.coding.duration, n_time_points)
        depths = hop_depths(program)
        uneven = [m for m, d in enumerate(depths) if len(d) > 1]
        if self.delay > 0 and uneven:
            stage = program.node_stage[uneven[0]]
            raise ValueError(
                f"synaptic delay {self.delay} > 0 needs equal hop counts on every path, but "
                f"{stage.name!r} is reached after {sorted(depths[uneven[0]])} hops; use "
                "delay = 0 for this network"
            )
        self.hops = max(depths[-1], default=0)

    @property
    def kernel_rule(self) -> tuple[int, float]:
        """The kernel's firing-rule code and band u (see ``neuron``)."""
        return _RULE_CODE[self.rule], band(self.hysteresis)


class EventSimulator(SimulatorSettings):
    """Simulate frames spike by spike; ``run`` splits frames over ``workers`` threads
    (the compiled kernel releases the GIL; default: one per CPU core)."""

    def __init__(
        self,
        program: Program,
        rule: FiringRule | str = FiringRule.EXACT,
        input_threshold: float = 0.2,
        delay: float = 0.0,
        n_time_points: int = 81,
        workers: int | None = None,
        *,
        hysteresis: float = 1.0,
        input_levels: int = 1,
    ) -> None:
        super().__init__(program, rule, input_threshold, delay, n_time_points,
                         hysteresis=hysteresis, input_levels=input_levels)
        self.workers = workers or os.cpu_count() or 1

    def run(
        self,
        x: torch.Tensor,
        *,
        chunk: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> SimRecord:
        """Simulate every frame of ``x`` (batch, *input_shape); ``progress(n_done)``."""
        self.program.check_frames(x)
        records = []
        for start in range(0, len(x), chunk):
            frames = x[start : start + chunk]
            parts = np.array_split(np.arange(len(frames)), min(self.workers, len(frames)))
            with ThreadPoolExecutor(len(parts)) as pool:
                records += pool.map(self._run_part, [frames[idx] for idx in parts])
            if progress is not None:
                progress(start + len(frames))
        return SimRecord.concat(records)

    def _run_part(self, frames: torch.Tensor) -> SimRecord:
        index, ptr, times, counts = self.coding.frames(frames)
        out = kernel.run_frames(index, ptr, counts, times, self.grid, *self.kernel_rule,
                                *self.program.kernel_arrays())
        q_at, v_at, spikes_at, updates_at, pos, neg, updates, updates_in, pool_msgs, v, q = out
        input_spikes = np.diff(np.concatenate([[0], np.cumsum(counts)])[ptr])
        return SimRecord(self.grid + self.hops * self.delay, q_at, v_at, spikes_at, updates_at,
                         pos, neg, updates, pool_msgs, input_spikes, v, q, updates_in)

    def final_state(self, frame: torch.Tensor) -> FrameState:
        """Simulate one frame and return the state of every node after all events."""
        p = self.program
        p.check_frames(frame[None])
        events = self.coding.frame(frame)
        v = np.empty(int(p.node_offset[-1]))
        q = np.empty(int(p.node_offset[-1]), np.int64)
        n_nodes = p.n_nodes
        n_out = int(p.node_offset[-1] - p.node_offset[-2])
        rows = [np.zeros((len(self.grid), n_out), np.int64),
                np.zeros((len(self.grid), n_out)),
                *(np.zeros(len(self.grid), np.int64) for _ in range(2))]
        per_node = [np.zeros(n_nodes, np.int64) for _ in range(5)]
        rule = self.kernel_rule
        t0_units = kernel.bias_firing(p.bias, *rule, p.node_offset, p.node_kind, p.node_theta,
                                      p.node_relu)
        kernel.run_frame(v, q, events.index, events.count, events.time, self.grid, *rule, t0_units,
                         *p.kernel_arrays(), *rows, *per_node)
        cuts = p.node_offset
        return FrameState(
            [v[cuts[m] : cuts[m + 1]] for m in range(n_nodes)],
            [q[cuts[m] : cuts[m + 1]] for m in range(n_nodes)],
        )
