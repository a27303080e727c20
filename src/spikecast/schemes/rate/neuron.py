"""Non-leaky integrate-and-fire (IF) neuron: parameters, state and a pure step function.

One step with input current I (per neuron, batched):

    v <- v + I;   s = [v >= theta];   v <- v - s theta   (Reset.SUBTRACT)
                                      v <- v (1 - s)      (Reset.ZERO)

Reset by subtraction keeps the charge above threshold, so the firing rate times theta
converges to max(0, I) for a constant I <= theta (Rueckauer et al. 2017); reset to zero
discards it and under-estimates the rate.

The membrane starts at v(0) = v_init theta. With v_init = 1/2 and reset by subtraction a
constant current I in [0, theta] gives floor(T I / theta + 1/2) spikes in T steps: the
rate rounds to the nearest level instead of flooring (Bu et al., ICLR 2022).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spikecast.choice import Choice


class Reset(Choice):
    """What a spike does to the membrane: subtract the threshold or set it to zero."""

    SUBTRACT = "subtract"
    ZERO = "zero"


@dataclass(frozen=True)
class IFParams:
    """Threshold theta (finite, > 0), reset mode (strings such as ``"zero"`` are accepted) and
    the initial membrane as a fraction of theta, ``v_init`` in [0, 1)."""

    threshold: float = 1.0
    reset: Reset = Reset.SUBTRACT
    v_init: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < float(self.threshold) < math.inf:
            raise ValueError(f"IF threshold must be a finite number > 0, got {self.threshold}")
        if isinstance(self.v_init, bool) or not 0.0 <= float(self.v_init) < 1.0:
            raise ValueError(
                f"IF v_init (initial membrane / threshold) must be in [0, 1), got {self.v_init!r}"
            )
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "reset", Reset(self.reset))
        object.__setattr__(self, "v_init", float(self.v_init))


@dataclass(frozen=True, eq=False)
class IFState:
    """Membrane potential v of every neuron, shaped like the input current."""

    v: torch.Tensor

    @classmethod
    def zeros(cls, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> IFState:
        return cls(torch.zeros(shape, dtype=dtype))

    @classmethod
    def initial(
        cls, shape: tuple[int, ...], p: IFParams, dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> IFState:
        """The state at t = 0: v = v_init theta everywhere."""
        return cls(torch.full(shape, p.v_init * p.threshold, dtype=dtype, device=device))


def if_step(
    current: torch.Tensor, state: IFState, p: IFParams
) -> tuple[torch.Tensor, IFState]:
    """One IF update; returns binary spikes (same dtype as ``current``) and the new state."""
    if current.shape != state.v.shape:
        raise ValueError(
            f"IF step: current shape {tuple(current.shape)} != membrane shape "
            f"{tuple(state.v.shape)}"
        )
    v = state.v + current
    spikes = (v >= p.threshold).to(current.dtype)
    v = v - spikes * p.threshold if p.reset is Reset.SUBTRACT else v * (1.0 - spikes)
    return spikes, IFState(v)
