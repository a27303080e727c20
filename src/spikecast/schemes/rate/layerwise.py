"""Layer-wise clock-driven simulation: every stage runs a block of steps at once.

The network has no feedback, so stage l at step t depends only on stages before l at steps
<= t: the simulator takes the stages in topological order and gives each one a block of n
steps (its inputs for all n steps are already known). Within a block:

* the constant input and the layers fed only by it are computed once;
* a synaptic layer receives, for every step, the tensor the step-by-step reference
  (:mod:`spikecast.schemes.rate.stepwise`) gives it (a fresh contiguous (batch, ...) tensor
  of the same values) and is called once per step, so its currents are the reference's bit
  for bit whatever the kernel's summation order (a BLAS or oneDNN call is deterministic for
  equal inputs, shapes and thread count; it may round differently for another row count,
  which is why the steps are not stacked into one call);
* Add, Concat and Flatten are elementwise or pure routing: applied to the whole block;
* a population's IF scan runs over the block in one kernel (:mod:`.kernels` on the CPU, a
  loop of :func:`~spikecast.schemes.rate.neuron.if_step` on other devices); a gated
  max-pool that is a population's only consumer is fused into its scan;
* the readout takes the cumulative counts and membranes of every step of the block.

Every float operation is the reference's, on the same operands, in the same order per
neuron, so spikes, counts, membranes and predictions are identical to it. A block holds
at most :data:`BLOCK_BYTES` per time-varying tensor (``block_steps`` overrides), so memory
grows with the batch, not with the number of steps.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from spikecast.choice import Choice
from spikecast.ir.graph import INPUT, Add, Concat, Flatten, MaxPool2d, Stage
from spikecast.schemes.rate import kernels
from spikecast.schemes.rate.neuron import IFParams, IFState, Reset, if_step
from spikecast.schemes.rate.signals import (
    InputCoding,
    RateOutput,
    Signal,
    lex_argmax,
    maxpool_pick,
)

BLOCK_BYTES = 16 * 2**20
PARALLEL_WORK = 2**22


class Backend(Choice):
    """The IF scan and max-pool gate: numba kernels (CPU tensors) or torch ops (any device)."""

    NUMBA = "numba"
    TORCH = "torch"


class LayerwiseRun:
    """One layer-wise simulation of a batch (see the module docstring).

    Per stage and block: ``events`` (n, batch, ...) of spiking stages; ``value`` what the
    stage sends on, kept only where it is not ``events`` x ``charge`` (the charge of one
    event: theta for a population, 1 for a Poisson input spike, carried through routing).
    """

    def __init__(
        self, stages: list[Stage], kinds: dict[int, Signal], x: torch.Tensor,
        neuron: IFParams, coding: InputCoding, generator: torch.Generator | None,
        backend: Backend | str = Backend.NUMBA,
    ) -> None:
        self.stages, self.kinds, self.x, self.neuron = stages, kinds, x, neuron
        self.coding, self.generator, self.backend = coding, generator, Backend(backend)
        if self.backend is Backend.NUMBA and x.device.type != "cpu":
            raise ValueError(f"the numba backend runs on the CPU, the batch is on {x.device}")
        self.theta32 = np.float32(neuron.threshold)
        batch, dev = x.shape[0], x.device
        self.pops = [s for s in stages if s.population]
        self.output = self.pops[-1]
        consumers: dict[int, list[Stage]] = {s.index: [] for s in stages}
        for s in stages:
            for k in s.sources:
                if k != INPUT:
                    consumers[k].append(s)
        self.fused = {  # population index -> the gated max-pool fused into its scan
            p.index: consumers[p.index][0] for p in self.pops
            if self.backend is Backend.NUMBA and p is not self.output
            and len(consumers[p.index]) == 1 and self._is_gate(consumers[p.index][0])
        }
        self.fused_gates = {g.index for g in self.fused.values()}
        self.keep_membrane = self._membranes_needed()
        self.charge = self._charges()
        self.tables = {
            s.index: kernels.window_table(s.layer, *s.in_shape[1:])
            for s in stages if self._is_gate(s) and self.backend is Backend.NUMBA
        }
        self.v = {s.index: IFState.initial((batch, *s.out_shape), neuron, device=dev).v
                  for s in self.pops}
        self.counts = {s.index: torch.zeros(batch, *s.out_shape, device=dev) for s in self.pops}
        self.arrivals: dict[int, torch.Tensor] = {}
        for s in stages:
            if s.synaptic and kinds[s.sources[0]] is Signal.EVENTS:
                self.arrivals[s.index] = torch.zeros(batch, *s.in_shape, device=dev)
            elif isinstance(s.layer, (Add, Concat)) and s.population and self._spiking(s):
                self.arrivals[s.index] = torch.zeros(batch, *s.out_shape, device=dev)
        self.pool_counts = {
            s.index: torch.zeros(batch, *s.in_shape, device=dev)
            for s in stages if self._is_gate(s) and s.index not in self.fused_gates
        }
        self.input_spikes = torch.zeros(batch, dtype=torch.float64, device=dev)
        self.value: dict[int, torch.Tensor] = {}
        self.events: dict[int, torch.Tensor] = {}
        self.membrane: dict[int, torch.Tensor | None] = {INPUT: None}
        self.constant: dict[int, torch.Tensor] = {}
        self.buffers: dict[tuple[int, str], torch.Tensor] = {}

    def _is_gate(self, s: Stage) -> bool:
        return isinstance(s.layer, MaxPool2d) and self.kinds[s.index] is Signal.EVENTS

    def _spiking(self, s: Stage) -> list[int]:
        return [k for k in s.sources if self.kinds[k] is Signal.EVENTS]

    def _membranes_needed(self) -> set[int]:
        """Stages whose per-step membranes someone reads: the output (readout), the sources
        of gated max-pools, and what a Flatten or Concat routes to them."""
        need = {self.output.index}
        for s in reversed(self.stages):
            if self._is_gate(s):
                need.add(s.sources[0])
            elif s.index in need and isinstance(s.layer, (Flatten, Concat)):
                need.update(s.sources)
        return need

    def _charges(self) -> dict[int, float]:
        """Stages whose value is exactly their events x a charge: the Poisson input (1),
        populations (theta), and max-pools and Flattens of such stages."""
        charge = {INPUT: 1.0} if self.coding is InputCoding.POISSON else {}
        for s in self.stages:
            if s.population:
                charge[s.index] = self.neuron.threshold
            elif isinstance(s.layer, (MaxPool2d, Flatten)) and s.sources[0] in charge:
                charge[s.index] = charge[s.sources[0]]
        return charge

    def block_steps(self, steps: int) -> int:
        """Steps per block: the widest time-varying tensor stays within BLOCK_BYTES (a
        population fused with its max-pool stores nothing when its current is constant)."""
        widest = max(
            (s.neurons for s in self.stages
             if self.kinds[s.index] is not Signal.STATIC and not (
                 s.index in self.fused
                 and all(self.kinds[k] is Signal.STATIC for k in s.sources))),
            default=1,
        )
        per_step = 4 * max(self.x.shape[0], 1) * widest
        return max(1, min(steps, BLOCK_BYTES // per_step))

    def run(self, steps: int, block_steps: int | None = None) -> RateOutput:
        block = self.block_steps(steps) if block_steps is None else block_steps
        if block < 1:
            raise ValueError(f"block_steps must be >= 1, got {block}")
        batch = self.x.shape[0]
        predictions = torch.empty(steps, batch, dtype=torch.long, device=self.x.device)
        n_out = self.counts[self.output.index][0].numel()
        output_counts = torch.empty(steps, batch, n_out, device=self.x.device)
        output_v = torch.empty(steps, batch, n_out, device=self.x.device)
        threads = numba.get_num_threads()
        try:
            for start in range(0, steps, block):
                n = min(block, steps - start)
                self._block(n)
                predictions[start : start + n] = self._readout()
                out = self.output.index
                events = self.events[out].flatten(2)
                output_counts[start : start + n] = (
                    self.counts[out].flatten(1) - events.sum(0) + events.cumsum(0))
                output_v[start : start + n] = self.membrane[out].flatten(2)
        finally:
            numba.set_num_threads(threads)
        return RateOutput(
            populations=tuple(self.pops),
            names=tuple(s.name for s in self.pops),
            counts=tuple(self.counts[s.index] for s in self.pops),
            membranes=tuple(self.v[s.index] for s in self.pops),
            arrivals=self.arrivals,
            input_spikes=self.input_spikes,
            predictions=predictions,
            steps=steps,
            output_counts=output_counts,
            output_v=output_v,
        )

    def _threads(self, work: int) -> None:
        """Kernel threads: torch's intra-op count for large kernels, 1 below
        :data:`PARALLEL_WORK` neuron-steps (a parallel launch costs more than it saves)."""
        wanted = torch.get_num_threads() if work >= PARALLEL_WORK else 1
        numba.set_num_threads(max(1, min(wanted, numba.config.NUMBA_NUM_THREADS)))

    def _buffer(self, key: tuple[int, str], n: int, shape: tuple[int, ...],
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A (n, *shape) tensor for one block, the same memory every block (the first
        block is the longest)."""
        if key not in self.buffers or self.buffers[key].shape[0] < n:
            self.buffers[key] = torch.empty((n, *shape), dtype=dtype, device=self.x.device)
        return self.buffers[key][:n]

    def _readout(self) -> torch.Tensor:
        """Readout after every step of the block: counts so far, then membrane, then index."""
        out = self.output.index
        events, membranes = self.events[out].flatten(2), self.membrane[out].flatten(2)
        if self.backend is Backend.NUMBA:
            predictions = torch.empty(events.shape[:2], dtype=torch.long)
            kernels.readout(_array(events), _array(membranes),
                            _array(self.counts[out].flatten(1)), predictions.numpy())
            return predictions
        counts = self.counts[out].flatten(1) - events.sum(0) + events.cumsum(0)
        return lex_argmax(counts, membranes, dim=2)

    def _block(self, n: int) -> None:
        self.value.clear()
        self.events.clear()
        if self.coding is InputCoding.POISSON:
            draws = torch.rand((n, *self.x.shape), generator=self.generator)
            spikes = (draws.to(self.x.device) < self.x).float()
            self.input_spikes += spikes.flatten(2).sum(2).double().sum(0)
            self.events[INPUT] = spikes
        else:
            self.value[INPUT] = self.x
        for s in self.stages:
            if s.index in self.fused_gates:
                continue
            if self._is_gate(s):
                self._gate(s, n)
                continue
            if s.index in self.arrivals:
                arriving = self.events[s.sources[0]] if s.synaptic else self._merged(s)
                self.arrivals[s.index] += arriving.sum(0)
            current = self._current(s, n)
            if s.population:
                self._fire(s, current, n)
                continue
            if self.kinds[s.index] is Signal.EVENTS:  # routing of spikes: Flatten, Add, Concat
                self.events[s.index] = self._merged(s)
                self.membrane[s.index] = self._routed_membrane(s)
            if s.index not in self.charge:
                self.value[s.index] = current

    def _value(self, k: int) -> torch.Tensor:
        """What stage k sends on during the block (see the class docstring)."""
        if k not in self.value:
            self.value[k] = self.events[k] * self.charge[k]
        return self.value[k]

    def _step_input(self, k: int, t: int) -> torch.Tensor:
        """Stage k's value at step t of the block as a fresh tensor, as the reference has it."""
        if k in self.charge and k not in self.value:
            return self.events[k][t] * self.charge[k]
        return self.value[k][t].clone()

    def _current(self, s: Stage, n: int) -> torch.Tensor | None:
        """The stage's linear output for every step of the block, (n, batch, ...), or once,
        (batch, ...), when all its sources are constant; None for a Flatten of charges
        (its value is its events x charge)."""
        if s.index in self.constant:
            return self.constant[s.index]
        static = all(self.kinds[k] is Signal.STATIC for k in s.sources)
        if static:
            self.constant[s.index] = s.layer.forward(*(self.value[k] for k in s.sources))
            return self.constant[s.index]
        if s.synaptic:
            first = s.layer.forward(self._step_input(s.sources[0], 0))
            out = self._buffer((s.index, "current"), n, first.shape)
            out[0] = first
            for t in range(1, n):
                out[t] = s.layer.forward(self._step_input(s.sources[0], t))
            return out
        if isinstance(s.layer, Flatten):
            return None if s.index in self.charge else self.value[s.sources[0]].flatten(2)
        ins = [self._value(k) for k in s.sources]
        if isinstance(s.layer, Concat):  # all inputs vary (signal_kinds refuses a mix)
            return torch.cat([x * w for w, x in zip(s.layer.weights, ins, strict=True)], dim=2)
        return s.layer.forward(*ins)  # Add: broadcasts constant inputs over the block

    def _merged(self, s: Stage) -> torch.Tensor:
        """Spike events passing ``s`` unweighted: summed by an Add, concatenated by a
        Concat, reshaped by a Flatten."""
        spiking = self._spiking(s)
        if isinstance(s.layer, Concat):
            return torch.cat([self.events[k] for k in spiking], dim=2)
        if isinstance(s.layer, Flatten):
            return self.events[spiking[0]].flatten(2)
        return sum((self.events[k] for k in spiking[1:]), self.events[spiking[0]])

    def _routed_membrane(self, s: Stage) -> torch.Tensor | None:
        """Membranes behind routed spikes, where a max-pool reads them."""
        if s.index not in self.keep_membrane:
            return None
        mems = [self.membrane[k] for k in s.sources]
        if isinstance(s.layer, Flatten):
            return None if mems[0] is None else mems[0].flatten(2)
        if isinstance(s.layer, Concat):
            return torch.cat([torch.zeros_like(self.events[k]) if m is None else m
                              for k, m in zip(s.sources, mems, strict=True)], dim=2)
        return None

    def _fire(self, s: Stage, current: torch.Tensor, n: int) -> None:
        if s.index in self.fused:
            self._fire_and_pool(s, self.fused[s.index], current, n)
            return
        keep = s.index in self.keep_membrane
        scan = self._scan_numba if self.backend is Backend.NUMBA else self._scan_torch
        self.events[s.index], self.membrane[s.index] = scan(s, current, n, keep)

    def _scan_numba(
        self, s: Stage, current: torch.Tensor, n: int, keep: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        shape = (n, self.x.shape[0], *s.out_shape)
        events = self._buffer((s.index, "events"), n, shape[1:])
        membranes = self._buffer((s.index, "membranes"), n, shape[1:]) if keep else None
        rows = 1 if current.dim() == len(shape) - 1 else n
        self._threads(events.numel())
        kernels.if_scan(
            _array(current.reshape(rows, -1)), _array(self.v[s.index].view(-1)),
            _array(self.counts[s.index].view(-1)), self.theta32,
            self.neuron.reset is Reset.ZERO, events.numpy().reshape(n, -1),
            _unwanted(2) if membranes is None else membranes.numpy().reshape(n, -1),
        )
        return events, membranes

    def _scan_torch(
        self, s: Stage, current: torch.Tensor, n: int, keep: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        constant = current.dim() == len(s.out_shape) + 1
        state = IFState(self.v[s.index])
        shape = (self.x.shape[0], *s.out_shape)
        events = self._buffer((s.index, "events"), n, shape)
        membranes = self._buffer((s.index, "membranes"), n, shape) if keep else None
        for t in range(n):
            events[t], state = if_step(current if constant else current[t], state, self.neuron)
            if membranes is not None:
                membranes[t] = state.v
        self.v[s.index] = state.v
        self.counts[s.index] += events.sum(0)
        return events, membranes

    def _fire_and_pool(self, s: Stage, gate: Stage, current: torch.Tensor, n: int) -> None:
        planes = self.x.shape[0] * s.out_shape[0]
        shape = (n, self.x.shape[0], *gate.out_shape)
        events = self._buffer((gate.index, "events"), n, shape[1:])
        membranes = (self._buffer((gate.index, "membranes"), n, shape[1:])
                     if gate.index in self.keep_membrane else None)
        rows = 1 if current.dim() == 4 else n
        self._threads(n * self.v[s.index].numel())
        kernels.if_pool_scan(
            _array(current.reshape(rows, planes, -1)), _array(self.v[s.index].view(planes, -1)),
            _array(self.counts[s.index].view(planes, -1)), self.theta32,
            self.neuron.reset is Reset.ZERO, self.tables[gate.index],
            events.numpy().reshape(n, planes, -1),
            _unwanted(3) if membranes is None else membranes.numpy().reshape(n, planes, -1),
        )
        self.events[gate.index] = events
        self.membrane[gate.index] = membranes

    def _gate(self, s: Stage, n: int) -> None:
        """Gated max-pool of a source that is not a fused population."""
        k = s.sources[0]
        events, membrane = self.events[k], self.membrane[k]
        batch = self.x.shape[0]
        if self.backend is Backend.NUMBA:
            planes = batch * s.in_shape[0]
            picks = self._buffer((s.index, "picks"), n, (batch, *s.out_shape), torch.long)
            self._threads(events.numel())
            kernels.gate_scan(
                _array(events.reshape(n, planes, -1)),
                _unwanted(3) if membrane is None else _array(membrane.reshape(n, planes, -1)),
                _array(self.pool_counts[s.index].view(planes, -1)), self.tables[s.index],
                picks.numpy().reshape(n, planes, -1),
            )
        else:
            counts = self.pool_counts[s.index] + events.cumsum(0)
            self.pool_counts[s.index] = counts[-1]
            picks = maxpool_pick(
                s.layer, counts.flatten(0, 1),
                None if membrane is None else membrane.flatten(0, 1),
            ).reshape(n, batch, *s.out_shape)
        self.events[s.index] = _gather(events, picks)
        if s.index not in self.charge:
            self.value[s.index] = _gather(self.value[k], picks)
        keep = s.index in self.keep_membrane and membrane is not None
        self.membrane[s.index] = _gather(membrane, picks) if keep else None


def _gather(x: torch.Tensor, picks: torch.Tensor) -> torch.Tensor:
    """x (n, batch, C, H, W) at the per-channel flat indices picks (n, batch, C, Ho, Wo)."""
    return x.flatten(3).gather(3, picks.flatten(3)).reshape(picks.shape)


def _unwanted(dims: int) -> np.ndarray:
    """The kernels' "no membranes" argument: an empty array of the expected rank."""
    return np.empty((0,) + (1,) * (dims - 1), dtype=np.float32)


def _array(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous float32 numpy view (a copy only when ``t`` is not one already)."""
    return t.float().contiguous().numpy()
