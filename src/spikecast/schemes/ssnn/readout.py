"""Winner-take-all readout of the output layer (paper Sec. IV-B).

The class is the output neuron with the most spikes in the observation window. Ties on the
count go to the larger membrane potential at the end of the window (the neuron closest to
its next spike), then to the lowest index. When every output is silent the same rule
applies, so the membrane potentials decide; such samples are counted separately.
"""

from __future__ import annotations

import torch


def winner_take_all(counts: torch.Tensor, v_mem: torch.Tensor) -> torch.Tensor:
    """Class per sample from spike ``counts`` and membrane potentials ``v_mem`` (..., n_out)."""
    if counts.shape != v_mem.shape:
        raise ValueError(f"counts {tuple(counts.shape)} vs v_mem {tuple(v_mem.shape)}")
    top = counts == counts.max(dim=-1, keepdim=True).values
    v = v_mem.double()
    masked = torch.where(top, v, torch.full_like(v, -torch.inf))
    best = masked == masked.max(dim=-1, keepdim=True).values
    index = torch.arange(counts.shape[-1]).expand_as(counts)
    return torch.where(best, index, counts.shape[-1]).min(dim=-1).values


def silent_samples(counts: torch.Tensor) -> torch.Tensor:
    """True where no output neuron spiked (counts (..., n_out))."""
    return counts.sum(dim=-1) == 0
