"""The sigma-delta neuron: a hysteresis quantizer of its activation (paper 004, Algorithm 1).

State: the membrane potential ``v`` (starts at the bias, never resets, no leak) and the
signed spike count ``count``; the quantized potential is V_q = count * theta. After every
update v <- v + x the neuron compares d = f(v) - V_q with theta, f = ReLU for hidden
populations and the identity for an output layer without ReLU:

* ``FiringRule.PAPER``: d >= theta -> one +1 spike, d <= -theta -> one -1 spike, at most one
  spike per update, exactly as Algorithm 1 is printed (V_q may lag f(v) by more than theta);
* ``FiringRule.EXACT``: sign(d) * floor(|d| / theta) spikes at once, i.e. keep firing until
  |f(v) - V_q| < theta.

``hysteresis`` h in [0, 1] sets the band d must leave before the neuron fires: with
u = (1 + h) / 2 it fires up while d >= u theta and down while d < -u theta (EXACT: n =
floor((d - u theta) / theta) + 1 up, max(1, ceil((-d - u theta) / theta)) down), so it rests
at -u theta <= f(v) - V_q < u theta; it steps up at f(v) = V_q + u theta and back at
V_q + (1 - u) theta, a band h theta wide.

* h = 1, the paper's hysteresis quantizer: fire while d >= theta or d <= -theta, rest at
  |f(v) - V_q| < theta: V_q is floor(f(v) / theta) theta after a rise, the ceiling after a
  fall, and the value depends on the path;
* h = 0, the nearest level: V_q = theta floor(f(v) / theta + 1/2) whatever the path, but a
  potential jittering around a half level fires at every crossing.

Each spike carries +-theta to every target: v_target <- v_target + w * (+-theta).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikecast.choice import Choice
from spikecast.errors import SpikecastError

MAX_FIRE = 2**24
"""The most spikes one update may fire (EXACT rule, 16,777,216). More means |f(v) - V_q| /
theta beyond what a frame can be simulated with (every spike is one queued event), and past
2**63 the signed count would overflow (weights of 1e30 gave negative spike counts): the
simulators (the numba kernel and :func:`fire_count`) refuse it with :data:`FIRE_LIMIT_MESSAGE`."""
FIRE_LIMIT_MESSAGE = (
    "sigma-delta: one update would fire more than 2**24 spikes from one neuron "
    "(|f(v) - V_q| / theta too large): the model's weights or biases are too large for its "
    "quantization levels theta; raise theta or rescale the model"
)


class FiringRule(Choice):
    """How many spikes one update may trigger."""

    PAPER = "paper"
    EXACT = "exact"


def check_hysteresis(h: float) -> float:
    """Return ``h`` as a float, or raise ValueError unless 0 <= h <= 1."""
    h = float(h)
    if not 0.0 <= h <= 1.0:
        raise ValueError(f"hysteresis must be in [0, 1] (the band in units of theta), got {h}")
    return h


def band(h: float) -> float:
    """u = (1 + h) / 2: the neuron rests while -u theta <= f(v) - V_q < u theta."""
    return (1.0 + h) / 2.0


def check_theta(theta: float, where: str = "theta") -> float:
    """Return ``theta`` as a float, or raise ValueError unless it is finite and > 0."""
    theta = float(theta)
    if not theta > 0 or theta == float("inf"):
        raise ValueError(f"{where} must be a finite number > 0, got {theta}")
    return theta


@dataclass(frozen=True)
class NeuronParams:
    """Quantization level ``theta``, firing rule, whether the activation is ReLU, and the
    hysteresis band h (in units of theta)."""

    theta: float = 1.0
    rule: FiringRule = FiringRule.EXACT
    relu: bool = True
    hysteresis: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "theta", check_theta(self.theta))
        object.__setattr__(self, "rule", FiringRule(self.rule))
        object.__setattr__(self, "hysteresis", check_hysteresis(self.hysteresis))


@dataclass(frozen=True)
class NeuronState:
    """Membrane potential ``v`` and signed spike count ``count`` (V_q = count * theta)."""

    v: torch.Tensor
    count: torch.Tensor

    @classmethod
    def initial(cls, bias: torch.Tensor) -> NeuronState:
        """V_mem(0) = bias, V_q(0) = 0."""
        v = bias.to(torch.float64).clone()
        return cls(v, torch.zeros_like(v))


def activation(v: torch.Tensor, relu: bool) -> torch.Tensor:
    """f(v): ReLU for hidden populations, identity for a linear output layer."""
    return v.clamp(min=0) if relu else v


def fire_count(v: torch.Tensor, count: torch.Tensor, p: NeuronParams) -> torch.Tensor:
    """Signed number of spikes the rule fires for d = f(v) - count * theta."""
    d = activation(v, p.relu) - count * p.theta
    if p.hysteresis == 1.0:
        up = d >= p.theta
        down = d <= -p.theta
        n_up = n_down = torch.floor(d.abs() / p.theta)
    else:
        u = band(p.hysteresis) * p.theta
        up = d >= u
        down = d < -u
        n_up = torch.floor((d - u) / p.theta) + 1
        n_down = torch.ceil((-d - u) / p.theta).clamp(min=1)
    if p.rule is FiringRule.PAPER:
        return up.to(v.dtype) - down.to(v.dtype)
    n = torch.where(up, n_up, torch.where(down, n_down, torch.zeros_like(d)))
    if n.numel() and float(n.max()) >= MAX_FIRE:
        raise SpikecastError(FIRE_LIMIT_MESSAGE)
    return torch.where(up, n_up, torch.where(down, -n_down, torch.zeros_like(d)))


def step(
    x: torch.Tensor, state: NeuronState, p: NeuronParams
) -> tuple[torch.Tensor, NeuronState]:
    """One update: v <- v + x, then fire; returns (signed spike counts, new state)."""
    v = state.v + x
    spikes = fire_count(v, state.count, p)
    return spikes, NeuronState(v, state.count + spikes)
