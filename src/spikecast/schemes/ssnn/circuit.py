"""Physical parameters of the SSNN circuit (Nomura et al., paper 000): the PWM encoder and
the neurons' constants (the neuron model itself is :mod:`spikecast.schemes.ssnn.neuron`).

Defaults the paper does not give are choices documented on each field; ``spike_width +
t_ref = 1 / 5.3 MHz`` (the paper's maximum spike rate, Table III).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum

import torch

from spikecast.checks import require_seed

PAPER_MAX_RATE_HZ = 5.3e6
DEFAULT_SPIKE_WIDTH_S = 50e-9


class Phase(str, Enum):
    """Phase of the PWM generators: all rising edges at t = 0, or uniform random phases."""

    ALIGNED = "aligned"
    RANDOM = "random"


def parse_enum(kind: type[Enum], value: Enum | str, what: str) -> Enum:
    """``kind(value)`` with a ValueError naming the allowed values."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in kind)
        raise ValueError(f"{what} must be one of {allowed}, got {value!r}") from None


@dataclass(frozen=True)
class PWMEncoder:
    """Time-based stochastic number generator (TBSC, paper Fig. 4).

    x in [0, 1] -> voltage V = v_min + x (v_max - v_min) -> duty = V / v_full; the generator is
    high for duty x period at the start of every period (shifted by its phase). Defaults are
    the paper's: 0.2-1.0 V input range and 0.5 V -> 50 % duty, 200 ns on-time, 400 ns period.
    """

    v_min: float = 0.2
    v_max: float = 1.0
    v_full: float = 1.0
    period: float = 400e-9
    phase: Phase = Phase.ALIGNED
    phase_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "phase", parse_enum(Phase, self.phase, "phase"))
        if not 0 <= self.v_min < self.v_max <= self.v_full:
            raise ValueError(
                "PWM voltages need 0 <= v_min < v_max <= v_full, got "
                f"v_min={self.v_min}, v_max={self.v_max}, v_full={self.v_full}"
            )
        if not self.period > 0:
            raise ValueError(f"PWM period must be > 0 s, got {self.period}")
        require_seed(self.phase_seed, "phase_seed")

    @property
    def offset(self) -> float:
        """Duty at x = 0 (v_min / v_full)."""
        return self.v_min / self.v_full

    @property
    def gain(self) -> float:
        """Duty per unit x ((v_max - v_min) / v_full)."""
        return (self.v_max - self.v_min) / self.v_full

    def duty(self, x: torch.Tensor) -> torch.Tensor:
        """duty = (v_min + x (v_max - v_min)) / v_full for x in [0, 1]."""
        if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
            raise ValueError(
                f"PWM inputs must lie in [0, 1] (duty outside [0, 1] otherwise), got "
                f"[{float(x.min()):.4g}, {float(x.max()):.4g}]"
            )
        return self.offset + self.gain * x.double()

    def phases(self, n_inputs: int) -> torch.Tensor:
        """Start time of each generator's first on-interval, in [0, period)."""
        if self.phase is Phase.ALIGNED:
            return torch.zeros(n_inputs, dtype=torch.float64)
        gen = torch.Generator().manual_seed(self.phase_seed)
        return torch.rand(n_inputs, generator=gen, dtype=torch.float64) * self.period


def pwm_on_time(duty: torch.Tensor, phase: torch.Tensor, period: float, t: float) -> torch.Tensor:
    """Total on-time of each generator over [0, t): sum over periods of the on-intervals
    [phase + k P, phase + k P + duty P), k any integer (the signal is periodic for all time)."""
    if duty.numel() and (float(duty.min()) < 0 or float(duty.max()) > 1):
        raise ValueError(
            f"duty must lie in [0, 1], got [{float(duty.min()):.4g}, {float(duty.max()):.4g}]"
        )
    on = duty * period

    def cumulative(s: torch.Tensor | float) -> torch.Tensor:
        u = s - phase
        k = torch.floor(u / period)
        return k * on + torch.clamp(u - k * period, max=on)

    return cumulative(t) - cumulative(0.0)


@dataclass(frozen=True)
class CircuitParams:
    """Physical parameters of synapses, neurons and the observation window (SI units).

    - ``c_mem``: membrane capacitance C (F). The paper gives no value; 1 pF.
    - ``v_th``: threshold of the spike-generator buffer (V); VDD / 2 = 0.9 V for the paper's
      1.8 V supply.
    - ``i_unit``: synapse current per unit normalized weight (A); ``None`` = calibrate on data
      (see :func:`spikecast.schemes.ssnn.network.calibrate_i_unit`).
    - ``spike_width``: output pulse width (s), set by the buffer capacitance (Fig. 7); 50 ns.
    - ``t_ref``: reset time after the pulse (s); default 1/5.3 MHz - spike_width, so the
      neuron's maximum rate is the paper's 5.3 Mspike/s.
    - ``window``: observation window per inference (s); 5 us as the paper.
    - ``mismatch_pct``: sigma (in %) of the Gaussian relative variation of every synapse
      current and every threshold; ``mismatch_seed`` draws it.
    - ``v_init``: membrane potential at the start of an inference as a fraction of V_th
      (0 = the paper's reset state; 0.5 precharges C to half the threshold, which rounds
      instead of truncating each neuron's residual charge).
    """

    c_mem: float = 1e-12
    v_th: float = 0.9
    i_unit: float | None = None
    spike_width: float = DEFAULT_SPIKE_WIDTH_S
    t_ref: float = 1.0 / PAPER_MAX_RATE_HZ - DEFAULT_SPIKE_WIDTH_S
    window: float = 5e-6
    mismatch_pct: float = 0.0
    mismatch_seed: int = 0
    encoder: PWMEncoder = field(default_factory=PWMEncoder)
    v_init: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "c_mem (membrane capacitance, F)": self.c_mem > 0,
            "v_th (threshold, V)": self.v_th > 0,
            "spike_width (s)": self.spike_width > 0,
            "window (observation window, s)": self.window > 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name.split(" ")[0])
            if not (ok and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite value > 0, got {value}")
        if not (self.t_ref >= 0 and math.isfinite(self.t_ref)):
            raise ValueError(f"t_ref (reset time, s) must be >= 0, got {self.t_ref}")
        if self.i_unit is not None and not (self.i_unit > 0 and math.isfinite(self.i_unit)):
            raise ValueError(f"i_unit (A per unit weight) must be > 0 or None, got {self.i_unit}")
        if not 0 <= self.v_init < 1:
            raise ValueError(f"v_init must be a fraction of V_th in [0, 1), got {self.v_init}")
        if not self.mismatch_pct >= 0:
            raise ValueError(f"mismatch_pct must be >= 0 %, got {self.mismatch_pct}")
        require_seed(self.mismatch_seed, "mismatch_seed")

    @property
    def t_refractory(self) -> float:
        """Time from a spike until the neuron integrates again: spike_width + t_ref."""
        return self.spike_width + self.t_ref

    @property
    def max_rate(self) -> float:
        """Highest possible spike rate 1 / (spike_width + t_ref), Hz."""
        return 1.0 / self.t_refractory

    def with_spike_width(self, spike_width: float) -> CircuitParams:
        """Same parameters with a new spike width and t_ref adjusted to keep the max rate."""
        return replace(self, spike_width=spike_width, t_ref=self.t_refractory - spike_width)


def pulse_fraction(last_spike: torch.Tensor, width: float, t: float, dt: float) -> torch.Tensor:
    """Fraction of [t, t + dt) covered by each neuron's output pulse [t_s, t_s + width)."""
    overlap = torch.clamp(last_spike + width, max=t + dt) - torch.clamp(last_spike, min=t)
    return torch.clamp(overlap, min=0.0) / dt
