"""Batched clock-driven simulation of a rate-coded network of IF neurons.

Every synaptic layer (Linear, Conv2d, AvgPool2d) feeds one population of IF neurons
(:mod:`spikecast.neurons.integrate_fire`). At every step t = 1..T:

* input: ``CONSTANT`` coding injects the analog current W x + b into the first synaptic
  layer's neurons (computed once; routing layers before it act on the analog x, so a
  max-pool there is the exact max); ``POISSON`` coding draws a spike for pixel i with
  probability x_i (seeded generator), and those unit spikes go through the first layer;
* synaptic layer l: I_l = W_l (theta s_{l-1}) + b_l -- an IF spike carries the charge
  theta (what reset by subtraction removes) and the bias is injected every step, so the rate r_l of
  population l satisfies theta r_l ~ max(0, W_l theta r_{l-1} + b_l), the normalized ANN
  activation;
* every synaptic layer feeds IF neurons, with or without a ReLU in the ANN (IF neurons
  rectify; the output layer's ANN values below 0 map to silence);
* MaxPool2d gates spike trains (:func:`maxpool_gate`); Flatten reshapes;
* readout: the output neuron with the most spikes so far, ties broken by the larger
  output membrane potential, then the lowest index (:func:`lex_argmax`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from spikecast.choice import Choice
from spikecast.graph import Flatten, MaxPool2d, Network, Stage
from spikecast.neurons.integrate_fire import IFParams, IFState, if_step


class InputCoding(Choice):
    """How the analog input enters: a constant current, or Poisson spike trains of rate x."""

    CONSTANT = "constant"
    POISSON = "poisson"


@dataclass(frozen=True, eq=False)
class RateOutput:
    """What one simulation of ``steps`` steps produced, per population (synaptic stage).

    ``counts`` and ``membranes`` are (batch, *out_shape); ``arrivals`` are the spike counts
    that reached each population's synaptic layer, (batch, *in_shape), or None for the
    first layer under constant-current input (analog, no spikes); ``input_spikes`` is the
    per-sample number of Poisson input spikes (zeros for constant input);
    ``predictions[t]`` is the readout after step t + 1, shape (steps, batch).
    """

    names: tuple[str, ...]
    counts: tuple[torch.Tensor, ...]
    membranes: tuple[torch.Tensor, ...]
    arrivals: tuple[torch.Tensor | None, ...]
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


def maxpool_gate(
    layer: MaxPool2d,
    spikes: torch.Tensor,
    counts: torch.Tensor,
    membrane: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spike-count gated max pooling (SNN Toolbox style).

    Each pooling unit forwards this step's spikes of the input neuron in its window with
    the largest spike count so far (``counts`` includes this step's ``spikes``); ties go to
    the larger membrane potential, then to the lowest row-major index in the window; zero
    padding never wins. The choice is exact: one native max-pool (which keeps the first
    maximum of a window) over the float64 key count x 2^32 + :func:`ordered_rank` (v), valid
    for counts below :data:`MAX_STEPS`. Returns the pooled spikes and the selected neurons'
    membranes (zeros when ``membrane`` is None, e.g. for input spikes).
    """
    if membrane is None:
        membrane = torch.zeros_like(spikes)
    key = counts.double() * 2.0**32 + ordered_rank(membrane).double()
    _, pick = F.max_pool2d(
        key, layer.kernel_size, layer.stride, layer.padding, return_indices=True
    )
    flat_pick = pick.flatten(2)
    pooled = spikes.flatten(2).gather(2, flat_pick).reshape(pick.shape)
    pooled_mem = membrane.flatten(2).gather(2, flat_pick).reshape(pick.shape)
    return pooled, pooled_mem


def _first_synaptic(stages: list[Stage]) -> int:
    """Index of the first synaptic stage; rejects layers the simulator cannot run."""
    for stage in stages:
        if not (stage.synaptic or isinstance(stage.layer, (MaxPool2d, Flatten))):
            raise ValueError(
                f"layer {stage.name!r}: {type(stage.layer).__name__} is not supported by the "
                "rate simulator (Linear, Conv2d, AvgPool2d, MaxPool2d, Flatten, ReLU)"
            )
    for i, stage in enumerate(stages):
        if stage.synaptic:
            return i
    raise ValueError("the network has no synaptic layer (Linear, Conv2d or AvgPool2d)")


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
    if coding is InputCoding.POISSON and x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"Poisson input coding needs inputs in [0, 1] (spike probabilities), got "
            f"[{float(x.min()):.4g}, {float(x.max()):.4g}]; use input_coding='constant'"
        )
    stages = net.stages()
    first = _first_synaptic(stages)
    pops = [s for s in stages if s.synaptic]
    batch = x.shape[0]
    x = x.float()
    states = {s.index: IFState.zeros((batch, *s.out_shape)) for s in pops}
    counts = {s.index: torch.zeros(batch, *s.out_shape) for s in pops}
    analog = coding is InputCoding.CONSTANT
    arrivals: dict[int, torch.Tensor] = {
        s.index: torch.zeros(batch, *s.in_shape)
        for s in pops
        if not (analog and s is stages[first])
    }
    pool_counts = {
        s.index: torch.zeros(batch, *s.in_shape)
        for s in stages
        if isinstance(s.layer, MaxPool2d)
    }
    input_spikes = torch.zeros(batch)
    constant_current = None
    if analog:
        a = x
        for s in stages[:first]:
            a = s.layer.forward(a)
        constant_current = stages[first].layer.forward(a)
    out_index = pops[-1].index
    predictions = torch.empty(steps, batch, dtype=torch.long)
    with torch.no_grad():
        for t in range(steps):
            signal: torch.Tensor | None = None
            membrane: torch.Tensor | None = None
            charge = 1.0
            if not analog:
                signal = (torch.rand(x.shape, generator=generator) < x).float()
                input_spikes += signal.flatten(1).sum(1)
            for s in stages[first if analog else 0:]:
                if s.synaptic:
                    if signal is None:
                        current = constant_current
                    else:
                        arrivals[s.index] += signal
                        current = s.layer.forward(signal * charge if charge != 1.0 else signal)
                    signal, states[s.index] = if_step(current, states[s.index], neuron)
                    counts[s.index] += signal
                    membrane, charge = states[s.index].v, neuron.threshold
                elif isinstance(s.layer, MaxPool2d):
                    pool_counts[s.index] += signal
                    signal, membrane = maxpool_gate(
                        s.layer, signal, pool_counts[s.index], membrane
                    )
                else:
                    signal = signal.flatten(1)
                    membrane = None if membrane is None else membrane.flatten(1)
            predictions[t] = lex_argmax(
                counts[out_index].flatten(1), states[out_index].v.flatten(1), dim=1
            )
    return RateOutput(
        names=tuple(s.name for s in pops),
        counts=tuple(counts[s.index] for s in pops),
        membranes=tuple(states[s.index].v for s in pops),
        arrivals=tuple(arrivals.get(s.index) for s in pops),
        input_spikes=input_spikes,
        predictions=predictions,
        steps=steps,
    )
