"""Reader conventions that an exported NIR file follows and an imported file is read with.

NIR (>= 1.0.5) defines IF as dv/dt = R I, z = [v > v_thr], v <- v_reset after a spike,
and LIF as tau dv/dt = (v_leak - v) + R I. The tools read those nodes differently
(checked on snnTorch 1.0.0, norse 1.1.0 and sinabs 3.1.3, see ``tests/nir_peers.py``):

* ``nir``: the standard. A spikecast population is an IF node with r = 1,
  v_thr = nextafter(float32(theta), -inf) (so v > v_thr iff v >= theta for float32
  membranes) and v_reset = 0, on a grid of dt = 1 NIR time unit per step. norse reads it
  exactly (its IAF adds the input without r or dt); sinabs reads it with its own IF (below).
* ``snntorch``: snnTorch 1.0.0 imports IF as a *leaky* ``Leaky(beta=0.9)`` returning
  (spikes, membrane), which the next layer cannot take; it imports LIF as
  ``Leaky(beta = 1 - dt / tau)`` (reset to zero, v > v_thr) with its fixed dt = 1e-4 and
  gain r dt / tau. A population is written as a leak-free LIF: tau = 2^100 (beta rounds
  to 1), r = tau / dt, on a grid of dt = 1e-4 per step.
* ``sinabs``: sinabs 3.1.3 imports IF as ``IAFSqueeze``: v >= v_thr fires, v <- v - v_thr
  (reset by subtraction, the IF of nir <= 1.0.4, which sinabs pins), several spikes in one
  step when v >= 2 v_thr, and a floor v >= -v_thr. A population with reset by subtraction
  is written as IF with v_thr = theta and without the v_reset field (nir <= 1.0.4 refuses
  it; nir >= 1.0.5 reads it as 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikecast.choice import Choice
from spikecast.schemes.rate.neuron import Reset

LEAK_FREE_TAU = 2.0**100
"""tau of a leak-free LIF: 1 - dt / tau is 1 in float32 and float64 for any dt <= 1."""

F32_EPS = float(np.finfo(np.float32).eps)


class NirDialect(Choice):
    """Whose reading of NIR a file follows: the standard, snnTorch's or sinabs'."""

    NIR = "nir"
    SNNTORCH = "snntorch"
    SINABS = "sinabs"


@dataclass(frozen=True)
class Convention:
    """How a dialect writes and reads a population of IF neurons.

    ``dt`` is the NIR time of one simulation step; ``strict`` whether a neuron fires on
    v > v_thr (else v >= v_thr); ``reset`` what a spike does to its membrane; ``neuron``
    the node type written ("IF" or "LIF"); ``v_reset_field`` whether IF nodes carry v_reset.
    """

    dt: float
    strict: bool
    reset: Reset
    neuron: str
    v_reset_field: bool

    def v_threshold(self, theta: float) -> np.float32:
        """The v_thr that fires exactly when spikecast's v >= theta does (float32)."""
        t32 = np.float32(theta)
        return np.nextafter(t32, np.float32(-np.inf)) if self.strict else t32

    def theta(self, v_threshold: object) -> np.ndarray:
        """spikecast's theta per neuron: the smallest float32 above v_thr when strict."""
        thr = np.asarray(v_threshold, dtype=np.float32)
        return np.nextafter(thr, np.float32(np.inf)) if self.strict else thr

    @property
    def rule(self) -> str:
        if self.strict:
            return "v > v_threshold with v_threshold = nextafter(float32(theta), -inf)"
        return "v >= v_threshold with v_threshold = theta"


CONVENTIONS: dict[NirDialect, Convention] = {
    NirDialect.NIR: Convention(1.0, True, Reset.ZERO, "IF", True),
    NirDialect.SNNTORCH: Convention(1e-4, True, Reset.ZERO, "LIF", True),
    NirDialect.SINABS: Convention(1.0, False, Reset.SUBTRACT, "IF", False),
}


def convention(dialect: NirDialect | str) -> Convention:
    """The :class:`Convention` of ``dialect`` (``ValueError`` lists the allowed names)."""
    return CONVENTIONS[NirDialect(dialect)]


def unit_gain(gain: np.ndarray) -> np.ndarray:
    """Gains within float32 rounding of 1 (r = tau / dt stored in float32) read as 1."""
    gain = np.asarray(gain, dtype=np.float64)
    return np.where(np.abs(gain - 1.0) <= 4 * F32_EPS, 1.0, gain).astype(np.float32)
