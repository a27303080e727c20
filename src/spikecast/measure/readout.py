"""How a class is read from the output population, the same for every scheme.

From the output neurons' spike counts n_c and potentials u_c (the scheme's accumulated
output potential: theta n_c + v_c for rate coding, the membrane for the SSNN circuit, V_mem
for sigma-delta):

* ``spike-count``: argmax_c n_c; a tie for the most spikes (all-silent outputs included)
  is counted wrong (prediction -1): neither paper says how ties are broken;
* ``count-membrane``: argmax_c n_c, ties by the larger u_c, then the lower index;
* ``membrane``: argmax_c u_c (ties by the lower index).

A sample is *silent* when no output neuron spiked and *tied* when more than one output
neuron holds the most spikes (silent samples with several outputs are tied too).
"""

from __future__ import annotations

import torch

from spikecast.choice import Choice

NO_CLASS = -1


class Readout(Choice):
    """The readout rule (see module docstring)."""

    SPIKE_COUNT = "spike-count"
    COUNT_MEMBRANE = "count-membrane"
    MEMBRANE = "membrane"


def decide(counts: torch.Tensor, potential: torch.Tensor, readout: Readout) -> torch.Tensor:
    """The class per row of ``counts`` / ``potential`` (..., C) under ``readout``."""
    if readout is Readout.MEMBRANE:
        return potential.argmax(-1)
    top = counts == counts.amax(-1, keepdim=True)
    if readout is Readout.SPIKE_COUNT:
        winner = top.to(torch.int64).argmax(-1)
        return torch.where(top.sum(-1) == 1, winner, torch.full_like(winner, NO_CLASS))
    masked = potential.double().masked_fill(~top, float("-inf"))
    return masked.argmax(-1)


def silent_and_tied(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``counts`` (B, C): every output count 0; more than one output at the
    maximum."""
    top = counts == counts.amax(-1, keepdim=True)
    return (counts == 0).all(-1), top.sum(-1) > 1
