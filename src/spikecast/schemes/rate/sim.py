"""Batched clock-driven simulation of a rate-coded network of IF neurons.

Every neuron population of the network (a stage followed by a ReLU, and the output stage)
becomes non-leaky IF neurons (:mod:`spikecast.schemes.rate.neuron`); everything else is
linear and is evaluated on each step's signals, in the network's topological order. At every
step t = 1..T:

* input: ``CONSTANT`` coding feeds the analog x (layers that depend on the input only are
  computed once: their current is constant; a max-pool there is the exact max);
  ``POISSON`` coding draws a spike for pixel i with probability x_i (seeded generator);
* a population spike carries the charge theta (what reset by subtraction removes), an input
  spike the charge 1; a synaptic layer turns arriving charge into current,
  I = W q + b (the bias is injected every step), so the rate r of a population satisfies
  theta r ~ max(0, normalized ANN activation);
* Add and Concat pass each arriving spike on with its weight (w_k q); a synaptic layer
  without a ReLU (e.g. the last convolution of a residual branch) sends its current into
  the Add population that follows it, so relu(conv(h) + x) is one population receiving the
  convolution's current and the skip spikes; a synaptic layer must receive spikes or the
  constant input, never another layer's current;
* MaxPool2d gates spike trains (:func:`maxpool_gate`); Flatten reshapes;
* readout: the output neuron with the most spikes so far, ties broken by the larger
  output membrane potential, then the lowest index (:func:`lex_argmax`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F

from spikecast.checks import require_finite
from spikecast.choice import Choice
from spikecast.ir.graph import (
    INPUT,
    MERGE,
    SYNAPTIC,
    Add,
    Concat,
    Flatten,
    MaxPool2d,
    Network,
    Stage,
)
from spikecast.schemes.rate.neuron import IFParams, IFState, if_step


class InputCoding(Choice):
    """How the analog input enters: a constant current, or Poisson spike trains of rate x."""

    CONSTANT = "constant"
    POISSON = "poisson"


class Signal(Enum):
    """What a stage sends on: the constant analog input (or a function of it only), a
    time-varying current, or spike events."""

    STATIC = "static"
    CURRENT = "current"
    EVENTS = "events"


@dataclass(frozen=True, eq=False)
class RateOutput:
    """What one simulation of ``steps`` steps produced.

    ``populations`` are the spiking stages; ``names``, ``counts`` and ``membranes`` follow
    them ((batch, *out_shape) each). ``arrivals[i]`` are the spike counts that reached
    stage i: at a synaptic layer's input (batch, *in_shape), or directly at an Add/Concat
    population (batch, *out_shape, summed over its spiking inputs); stages fed by the
    analog input have none. ``input_spikes`` is the per-sample number of Poisson input
    spikes (zeros for constant input); ``predictions[t]`` is the readout after step t + 1,
    shape (steps, batch).
    """

    populations: tuple[Stage, ...]
    names: tuple[str, ...]
    counts: tuple[torch.Tensor, ...]
    membranes: tuple[torch.Tensor, ...]
    arrivals: dict[int, torch.Tensor]
    input_spikes: torch.Tensor
    predictions: torch.Tensor
    steps: int


def lex_argmax(primary: torch.Tensor, secondary: torch.Tensor, dim: int) -> torch.Tensor:
    """argmax of ``primary`` along ``dim``; ties -> larger ``secondary``, then lowest index."""
    best = primary.amax(dim, keepdim=True)
    masked = secondary.masked_fill(primary != best, float("-inf"))
    return masked.argmax(dim)


MAX_STEPS = 2**21  # keeps the max-pool gating key count x 2^32 + rank exact in float64


def ordered_rank(v: torch.Tensor) -> torch.Tensor:
    """Order-preserving int32 image of float32 ``v`` (a < b iff rank(a) < rank(b); -0 = +0):
    the IEEE bits, with the 31 magnitude bits flipped for negative numbers."""
    bits = (v.float() + 0.0).view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def maxpool_pick(
    layer: MaxPool2d, counts: torch.Tensor, membrane: torch.Tensor | None
) -> torch.Tensor:
    """Spike-count gated max pooling (SNN Toolbox style): which input each unit forwards.

    Each pooling unit forwards this step's spikes of the input neuron in its window with
    the largest spike count so far (``counts`` includes this step's spikes); ties go to
    the larger membrane potential, then to the lowest row-major index in the window; zero
    padding never wins. The choice is exact: one native max-pool (which keeps the first
    maximum of a window) over the float64 key count x 2^32 + :func:`ordered_rank` (v), valid
    for counts below :data:`MAX_STEPS`. Returns flat per-channel indices (batch, C, Ho, Wo).
    """
    if membrane is None:
        membrane = torch.zeros_like(counts)
    key = counts.double() * 2.0**32 + ordered_rank(membrane).double()
    _, pick = F.max_pool2d(
        key, layer.kernel_size, layer.stride, layer.padding, return_indices=True
    )
    return pick


def _gather(x: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).gather(2, pick.flatten(2)).reshape(pick.shape)


def maxpool_gate(
    layer: MaxPool2d,
    spikes: torch.Tensor,
    counts: torch.Tensor,
    membrane: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pooled ``spikes`` and the selected neurons' membranes (zeros when ``membrane``
    is None, e.g. for input spikes); see :func:`maxpool_pick`."""
    pick = maxpool_pick(layer, counts, membrane)
    mem = torch.zeros_like(spikes) if membrane is None else membrane
    return _gather(spikes, pick), _gather(mem, pick)


def _unsupported(stage: Stage, why: str) -> ValueError:
    return ValueError(f"layer {stage.name!r} ({type(stage.layer).__name__}): {why}")


def signal_kinds(stages: list[Stage], coding: InputCoding) -> dict[int, Signal]:
    """What every stage sends on (see :class:`Signal`); rejects graphs the simulator cannot
    run faithfully."""
    kinds = {INPUT: Signal.STATIC if coding is InputCoding.CONSTANT else Signal.EVENTS}
    for s in stages:
        if not isinstance(s.layer, (*SYNAPTIC, *MERGE, MaxPool2d, Flatten)):
            raise _unsupported(s, "not supported by the rate simulator (Linear, Conv2d, "
                                  "AvgPool2d, MaxPool2d, Flatten, Add, Concat, ReLU)")
    output = next(s for s in reversed(stages) if s.population)
    if not (output.synaptic or isinstance(output.layer, MERGE)):
        raise _unsupported(output, "the output must be a Linear, Conv2d, AvgPool2d, Add "
                                       "or Concat (optionally followed by Flatten)")
    by_index = {s.index: s for s in stages}
    for s in stages:
        ins = [kinds[k] for k in s.sources]
        feed = by_index.get(s.sources[0])
        if (isinstance(s.layer, MaxPool2d) and feed is not None and isinstance(feed.layer, Add)
                and not feed.population and len(set(feed.layer.weights)) > 1):
            raise _unsupported(
                s, f"max-pools the Add {feed.name!r} of differently weighted spike trains "
                f"(weights {feed.layer.weights}): spike counts do not rank its values; put a "
                "ReLU after the Add (it becomes a population)",
            )
        if s.synaptic or isinstance(s.layer, MaxPool2d):
            if ins[0] is Signal.CURRENT:
                raise _unsupported(
                    s, "receives the current of a layer without ReLU; the rate simulator needs "
                    "spikes there (add a ReLU, or fold the two linear layers into one)",
                )
            synaptic = Signal.CURRENT if s.synaptic else Signal.EVENTS
            kind = Signal.STATIC if ins[0] is Signal.STATIC else synaptic
        elif isinstance(s.layer, Concat) and len(set(ins)) > 1:
            raise _unsupported(s, f"concatenates {sorted(k.value for k in set(ins))} signals; "
                                  "all inputs must be spikes (or all the constant input)")
        else:
            kind = ins[0] if len(set(ins)) == 1 else Signal.CURRENT
        kinds[s.index] = Signal.EVENTS if s.population else kind
    return kinds


def simulate(
    net: Network,
    x: torch.Tensor,
    steps: int,
    neuron: IFParams,
    coding: InputCoding,
    generator: torch.Generator | None = None,
) -> RateOutput:
    """Run ``steps`` clock steps of the rate-coded network ``net`` on the batch ``x``."""
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be in [1, {MAX_STEPS}], got {steps}")
    if tuple(x.shape[1:]) != tuple(net.input_shape):
        raise ValueError(
            f"input samples have shape {tuple(x.shape[1:])}, the network expects "
            f"{tuple(net.input_shape)}"
        )
    require_finite(x)
    if x.numel() and x.min() < 0:
        raise ValueError(
            f"inputs reach {float(x.min()):.4g}; spikecast assumes inputs in [0, 1] (the "
            "captured graph drops ReLUs on the input)"
        )
    if coding is InputCoding.POISSON and x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"Poisson input coding needs inputs in [0, 1] (spike probabilities), got "
            f"[{float(x.min()):.4g}, {float(x.max()):.4g}]; use input_coding='constant'"
        )
    stages = net.stages()
    kinds = signal_kinds(stages, coding)
    with torch.no_grad():
        return _Run(stages, kinds, x.float(), neuron, coding, generator).run(steps)


class _Run:
    """State of one batched simulation: per stage the value it sends on (charge for
    spikes), its spike events and its membrane (for max-pool ties)."""

    def __init__(
        self, stages: list[Stage], kinds: dict[int, Signal], x: torch.Tensor,
        neuron: IFParams, coding: InputCoding, generator: torch.Generator | None,
    ) -> None:
        self.stages, self.kinds, self.x, self.neuron = stages, kinds, x, neuron
        self.coding, self.generator = coding, generator
        batch = x.shape[0]
        self.pops = [s for s in stages if s.population]
        self.state = {s.index: IFState.initial((batch, *s.out_shape), neuron) for s in self.pops}
        self.counts = {s.index: torch.zeros(batch, *s.out_shape) for s in self.pops}
        self.arrivals: dict[int, torch.Tensor] = {}
        for s in stages:
            if s.synaptic and kinds[s.sources[0]] is Signal.EVENTS:
                self.arrivals[s.index] = torch.zeros(batch, *s.in_shape)
            elif isinstance(s.layer, MERGE) and s.population and self._spiking(s):
                self.arrivals[s.index] = torch.zeros(batch, *s.out_shape)
        self.pool_counts = {
            s.index: torch.zeros(batch, *s.in_shape)
            for s in stages if isinstance(s.layer, MaxPool2d) and kinds[s.index] is Signal.EVENTS
        }
        self.input_spikes = torch.zeros(batch)
        self.value: dict[int, torch.Tensor] = {}
        self.events: dict[int, torch.Tensor] = {}
        self.membrane: dict[int, torch.Tensor | None] = {INPUT: None}
        self.constant: dict[int, torch.Tensor] = {}  # values / currents that never change

    def _spiking(self, s: Stage) -> list[int]:
        return [k for k in s.sources if self.kinds[k] is Signal.EVENTS]

    def run(self, steps: int) -> RateOutput:
        out = self.pops[-1].index
        predictions = torch.empty(steps, self.x.shape[0], dtype=torch.long)
        for t in range(steps):
            self.step()
            predictions[t] = lex_argmax(
                self.counts[out].flatten(1), self.state[out].v.flatten(1), dim=1
            )
        return RateOutput(
            populations=tuple(self.pops),
            names=tuple(s.name for s in self.pops),
            counts=tuple(self.counts[s.index] for s in self.pops),
            membranes=tuple(self.state[s.index].v for s in self.pops),
            arrivals=self.arrivals,
            input_spikes=self.input_spikes,
            predictions=predictions,
            steps=steps,
        )

    def step(self) -> None:
        if self.coding is InputCoding.POISSON:
            spikes = (torch.rand(self.x.shape, generator=self.generator) < self.x).float()
            self.input_spikes += spikes.flatten(1).sum(1)
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
        self.value[s.index] = _gather(self.value[k], pick)
        self.events[s.index] = _gather(self.events[k], pick)
        mem = self.membrane[k]
        self.membrane[s.index] = None if mem is None else _gather(mem, pick)
