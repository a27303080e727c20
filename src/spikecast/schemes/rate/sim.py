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

Two schedules compute exactly the same spikes, counts, membranes and predictions:
``layer`` (:mod:`.layerwise`, the default) runs every stage over a block of steps at once;
``step`` (:mod:`.stepwise`, the reference) runs every stage once per step. Both run on the
``device`` of the setting (:mod:`spikecast.device`) and return CPU tensors.
"""

from __future__ import annotations

import torch

from spikecast.checks import require_unit_interval
from spikecast.choice import Choice
from spikecast.device import Device, network_on, resolve_device
from spikecast.ir.graph import Network
from spikecast.schemes.rate.layerwise import Backend, LayerwiseRun
from spikecast.schemes.rate.neuron import IFParams
from spikecast.schemes.rate.signals import (
    MAX_STEPS,
    InputCoding,
    RateOutput,
    Signal,
    lex_argmax,
    maxpool_gate,
    maxpool_pick,
    ordered_rank,
    signal_kinds,
)
from spikecast.schemes.rate.stepwise import StepwiseRun

__all__ = [
    "MAX_STEPS", "InputCoding", "RateOutput", "Schedule", "Signal", "lex_argmax",
    "maxpool_gate", "maxpool_pick", "ordered_rank", "signal_kinds", "simulate",
]


class Schedule(Choice):
    """``layer``: every stage over a block of steps; ``step``: every stage once per step."""

    LAYER = "layer"
    STEP = "step"


def simulate(
    net: Network,
    x: torch.Tensor,
    steps: int,
    neuron: IFParams,
    coding: InputCoding,
    generator: torch.Generator | None = None,
    *,
    schedule: Schedule | str = Schedule.LAYER,
    device: Device | str = Device.CPU,
    block_steps: int | None = None,
) -> RateOutput:
    """Run ``steps`` clock steps of the rate-coded network ``net`` on the batch ``x``.

    Poisson draws come from ``generator`` on the CPU whatever the device, so every device
    and schedule sees the same input spikes; ``block_steps`` fixes the layer schedule's
    block length (default: what fits :data:`~.layerwise.BLOCK_BYTES`).
    """
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be in [1, {MAX_STEPS}], got {steps}")
    if tuple(x.shape[1:]) != tuple(net.input_shape):
        raise ValueError(
            f"input samples have shape {tuple(x.shape[1:])}, the network expects "
            f"{tuple(net.input_shape)}"
        )
    require_unit_interval(x)
    schedule = Schedule(schedule)
    where = resolve_device(device)
    stages = network_on(net, where).stages()
    kinds = signal_kinds(stages, coding)
    xs = x.float().to(where)
    with torch.no_grad():
        if schedule is Schedule.STEP:
            out = StepwiseRun(stages, kinds, xs, neuron, coding, generator).run(steps)
        else:
            backend = Backend.NUMBA if where.type == "cpu" else Backend.TORCH
            run = LayerwiseRun(stages, kinds, xs, neuron, coding, generator, backend)
            out = run.run(steps, block_steps)
    return on_cpu(out)


def on_cpu(out: RateOutput) -> RateOutput:
    """The same record with every tensor on the CPU."""
    if out.predictions.device.type == "cpu":
        return out
    return RateOutput(
        populations=out.populations,
        names=out.names,
        counts=tuple(c.cpu() for c in out.counts),
        membranes=tuple(m.cpu() for m in out.membranes),
        arrivals={k: a.cpu() for k, a in out.arrivals.items()},
        input_spikes=out.input_spikes.cpu(),
        predictions=out.predictions.cpu(),
        steps=out.steps,
        output_counts=out.output_counts.cpu(),
        output_v=out.output_v.cpu(),
    )
