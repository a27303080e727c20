"""The step-by-step rate simulator: every stage once per step, in topological order (the
reference the layer-wise simulator is proven equal to; semantics in
:mod:`spikecast.schemes.rate.sim`)."""

from __future__ import annotations

import torch

from spikecast.ir.graph import INPUT, MERGE, Concat, Flatten, MaxPool2d, Stage
from spikecast.schemes.rate.neuron import IFParams, IFState, if_step
from spikecast.schemes.rate.signals import (
    InputCoding,
    RateOutput,
    Signal,
    gather,
    lex_argmax,
    maxpool_pick,
)


class StepwiseRun:
    """State of one batched simulation: per stage the value it sends on (charge for
    spikes), its spike events and its membrane (for max-pool ties)."""

    def __init__(
        self, stages: list[Stage], kinds: dict[int, Signal], x: torch.Tensor,
        neuron: IFParams, coding: InputCoding, generator: torch.Generator | None,
    ) -> None:
        self.stages, self.kinds, self.x, self.neuron = stages, kinds, x, neuron
        self.coding, self.generator = coding, generator
        batch, dev = x.shape[0], x.device
        self.pops = [s for s in stages if s.population]
        self.state = {
            s.index: IFState.initial((batch, *s.out_shape), neuron, device=dev)
            for s in self.pops
        }
        self.counts = {s.index: torch.zeros(batch, *s.out_shape, device=dev) for s in self.pops}
        self.arrivals: dict[int, torch.Tensor] = {}
        for s in stages:
            if s.synaptic and kinds[s.sources[0]] is Signal.EVENTS:
                self.arrivals[s.index] = torch.zeros(batch, *s.in_shape, device=dev)
            elif isinstance(s.layer, MERGE) and s.population and self._spiking(s):
                self.arrivals[s.index] = torch.zeros(batch, *s.out_shape, device=dev)
        self.pool_counts = {
            s.index: torch.zeros(batch, *s.in_shape, device=dev)
            for s in stages if isinstance(s.layer, MaxPool2d) and kinds[s.index] is Signal.EVENTS
        }
        self.input_spikes = torch.zeros(batch, dtype=torch.float64, device=dev)
        self.value: dict[int, torch.Tensor] = {}
        self.events: dict[int, torch.Tensor] = {}
        self.membrane: dict[int, torch.Tensor | None] = {INPUT: None}
        self.constant: dict[int, torch.Tensor] = {}  # values / currents that never change

    def _spiking(self, s: Stage) -> list[int]:
        return [k for k in s.sources if self.kinds[k] is Signal.EVENTS]

    def run(self, steps: int) -> RateOutput:
        out = self.pops[-1].index
        batch = self.x.shape[0]
        predictions = torch.empty(steps, batch, dtype=torch.long, device=self.x.device)
        n_out = self.counts[out][0].numel()
        output_counts = torch.empty(steps, batch, n_out, device=self.x.device)
        output_v = torch.empty(steps, batch, n_out, device=self.x.device)
        for t in range(steps):
            self.step()
            output_counts[t] = self.counts[out].flatten(1)
            output_v[t] = self.state[out].v.flatten(1)
            predictions[t] = lex_argmax(output_counts[t], output_v[t], dim=1)
        return RateOutput(
            populations=tuple(self.pops),
            names=tuple(s.name for s in self.pops),
            counts=tuple(self.counts[s.index] for s in self.pops),
            membranes=tuple(self.state[s.index].v for s in self.pops),
            arrivals=self.arrivals,
            input_spikes=self.input_spikes,
            predictions=predictions,
            steps=steps,
            output_counts=output_counts,
            output_v=output_v,
        )

    def step(self) -> None:
        if self.coding is InputCoding.POISSON:
            draws = torch.rand(self.x.shape, generator=self.generator).to(self.x.device)
            spikes = (draws < self.x).float()
            self.input_spikes += spikes.flatten(1).sum(1).double()
            self.value[INPUT], self.events[INPUT] = spikes, spikes
        else:
            self.value[INPUT] = self.x
        for s in self.stages:
            if isinstance(s.layer, MaxPool2d) and self.kinds[s.index] is Signal.EVENTS:
                self._gate(s)
                continue
            if s.index in self.arrivals:
                self.arrivals[s.index] += self.events[s.sources[0]] if s.synaptic else (
                    self._merged(s)
                )
            current = self._current(s)
            if s.population:
                self._fire(s, current)
                continue
            self.value[s.index] = current
            if self.kinds[s.index] is Signal.EVENTS:  # routing of spikes: Flatten, Add, Concat
                self.events[s.index] = self._merged(s)
                self.membrane[s.index] = self._routed_membrane(s)

    def _current(self, s: Stage) -> torch.Tensor:
        """The stage's linear output from its sources' values (once if they are constant)."""
        if s.index in self.constant:
            return self.constant[s.index]
        out = s.layer.forward(*(self.value[k] for k in s.sources))
        if all(self.kinds[k] is Signal.STATIC for k in s.sources):
            self.constant[s.index] = out
        return out

    def _merged(self, s: Stage) -> torch.Tensor:
        """Spike events passing ``s`` unweighted: summed by an Add, concatenated by a
        Concat, reshaped by a Flatten, the synaptic input's own otherwise."""
        spiking = self._spiking(s)
        if isinstance(s.layer, Concat):
            return torch.cat([self.events[k] for k in spiking], dim=1)
        if isinstance(s.layer, Flatten):
            return self.events[spiking[0]].flatten(1)
        return sum((self.events[k] for k in spiking[1:]), self.events[spiking[0]])

    def _routed_membrane(self, s: Stage) -> torch.Tensor | None:
        """Membranes behind routed spikes (for max-pool ties): reshaped by a Flatten,
        concatenated by a Concat (zeros for the input), none after an Add."""
        mems = [self.membrane[k] for k in s.sources]
        if isinstance(s.layer, Flatten):
            return None if mems[0] is None else mems[0].flatten(1)
        if isinstance(s.layer, Concat):
            return torch.cat([torch.zeros_like(self.value[k]) if m is None else m
                              for k, m in zip(s.sources, mems, strict=True)], dim=1)
        return None

    def _fire(self, s: Stage, current: torch.Tensor) -> None:
        spikes, self.state[s.index] = if_step(current, self.state[s.index], self.neuron)
        self.counts[s.index] += spikes
        self.value[s.index] = spikes * self.neuron.threshold
        self.events[s.index] = spikes
        self.membrane[s.index] = self.state[s.index].v

    def _gate(self, s: Stage) -> None:
        k = s.sources[0]
        self.pool_counts[s.index] += self.events[k]
        pick = maxpool_pick(s.layer, self.pool_counts[s.index], self.membrane[k])
        self.value[s.index] = gather(self.value[k], pick)
        self.events[s.index] = gather(self.events[k], pick)
        mem = self.membrane[k]
        self.membrane[s.index] = None if mem is None else gather(mem, pick)
