"""What the rate simulators share: input coding, signal kinds, the output record, the
readout order and spike-count gated max pooling (see :mod:`spikecast.schemes.rate.sim`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F

from spikecast.choice import Choice
from spikecast.ir.graph import INPUT, MERGE, SYNAPTIC, Add, Concat, Flatten, MaxPool2d, Stage


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
    shape (steps, batch) (most spikes, ties by the larger membrane); ``output_counts[t]`` and
    ``output_v[t]`` are the output neurons' spike counts and membranes after step t + 1,
    (steps, batch, outputs) each.
    """

    populations: tuple[Stage, ...]
    names: tuple[str, ...]
    counts: tuple[torch.Tensor, ...]
    membranes: tuple[torch.Tensor, ...]
    arrivals: dict[int, torch.Tensor]
    input_spikes: torch.Tensor
    predictions: torch.Tensor
    steps: int
    output_counts: torch.Tensor
    output_v: torch.Tensor


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


def gather(x: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
    """x (batch, C, H, W) at the per-channel flat indices pick (batch, C, Ho, Wo)."""
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
    return gather(spikes, pick), gather(mem, pick)


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
