"""The activations that replace the ReLUs during conversion-aware fine-tuning.

Sigma-delta (:class:`QuantReLU`, one quantization level theta per population):

* ``relu``: a = ReLU(z) (a float phase, e.g. on the 1-bit input from scratch);
* ``floor``: a = theta floor(ReLU(z) / theta), what the Q-ANN computes;
* ``hysteresis``: what the hysteresis neuron settles to. Its final value is any grid level q
  with |ReLU(z) - q| < theta, i.e. floor or one level above (a value that rose, then fell).
  Training draws the extra level with probability min(1, up * frac), frac = ReLU(z) / theta
  - floor(ReLU(z) / theta), ``up`` per population as measured in the event-driven simulator
  (:func:`spikecast.finetune.hysteresis.measure_up_rates`); in eval mode it is ``floor``.

Rate (:class:`QCFS`, quantization-clip-floor-shift, Bu et al., ICLR 2022), for T time steps
and a trainable scale lambda per population:

    a = lambda clip(floor(z T / lambda + 1/2) / T, 0, 1),

what T steps of an IF neuron with threshold lambda, reset by subtraction and initial
membrane lambda / 2 emit for a constant input z.

Every floor passes its input's gradient (straight-through), so QuantReLU has ReLU's
gradient and QCFS the gradient of lambda clip(z / lambda + 1 / (2T), 0, 1) with the floor
term held: dz: 1 on 0 < z < lambda, else 0; dlambda: a / lambda - z / lambda inside,
1 above, 0 below. Each quantizer records ``levels``, the expected spikes of its layer per
sample (sum of ReLU(z) / theta; for QCFS, T a / lambda summed), for the spike penalty.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spikecast.choice import Choice
from spikecast.schemes.sigma_delta.neuron import check_theta


class Quantizer(Choice):
    """What replaces every ReLU during fine-tuning (see the module docstring)."""

    RELU = "relu"
    FLOOR = "floor"
    HYSTERESIS = "hysteresis"
    QCFS = "qcfs"


def ste_floor(v: torch.Tensor) -> torch.Tensor:
    """floor(v) forward, identity gradient backward."""
    return v + (torch.floor(v) - v).detach()


class QuantReLU(nn.Module):
    """ReLU, floor or hysteresis quantizer forward, ReLU gradient backward; records
    ``levels`` = sum of ReLU(z) / theta per sample (the expected spikes of the layer)."""

    def __init__(self, theta: float, mode: Quantizer | str = Quantizer.FLOOR, up: float = 0.0):
        super().__init__()
        self.theta = check_theta(theta)
        self.mode = Quantizer(mode)
        if self.mode is Quantizer.QCFS:
            raise ValueError("QuantReLU quantizes for sigma-delta; use QCFS for 'qcfs'")
        if not (up >= 0 and math.isfinite(up)):
            raise ValueError(f"hysteresis up rate must be a number >= 0, got {up}")
        self.up = float(up)
        self.levels = torch.zeros(())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        a = torch.relu(z)
        self.levels = (a / self.theta).flatten(1).sum(1)
        if self.mode is Quantizer.RELU:
            return a
        n = torch.floor(a / self.theta)
        if self.mode is Quantizer.HYSTERESIS and self.training and self.up > 0:
            frac = a / self.theta - n
            n = n + (torch.rand_like(a) < self.up * frac).to(a.dtype)
        return a + (n * self.theta - a).detach()


class QCFS(nn.Module):
    """a = lambda clip(floor(z T / lambda + 1/2) / T, 0, 1) with a trainable lambda > 0.

    ``tied`` (instead of a parameter of its own) takes lambda as the largest lambda of
    those quantizers (or fixed scales): the scale an average pool of their outputs keeps."""

    def __init__(
        self, steps: int, lam: float = 1.0, tied: tuple[QCFS | float, ...] = ()
    ) -> None:
        super().__init__()
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"QCFS needs an integer number of time steps >= 1, got {steps!r}")
        self.steps = steps
        self.tied = tuple(q for q in tied if isinstance(q, QCFS))
        fixed = [float(q) for q in tied if not isinstance(q, QCFS)]
        self.register_buffer("fixed", torch.tensor(max(fixed)) if fixed else None)
        if tied:
            self.register_parameter("lam", None)
        else:
            if not (lam > 0 and math.isfinite(lam)):
                raise ValueError(f"QCFS lambda must be a finite number > 0, got {lam}")
            self.lam = nn.Parameter(torch.tensor(float(lam)))
        self.levels = torch.zeros(())

    def scale(self) -> torch.Tensor:
        """lambda (a tied quantizer's: the largest of the quantizers it is tied to)."""
        if self.lam is not None:
            return self.lam
        scales = [q.scale() for q in self.tied]
        return torch.stack(scales + ([self.fixed] if self.fixed is not None else [])).max()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lam = self.scale()
        q = ste_floor(torch.clamp(z / lam, 0.0, 1.0) * self.steps + 0.5) / self.steps
        self.levels = (q * self.steps).flatten(1).sum(1)
        return q * lam
