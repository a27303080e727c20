"""The hysteresis rates of a sigma-delta SNN, measured in its event-driven simulator.

A hysteresis neuron settles on floor(ReLU(v) / theta) or one level above (its value rose,
then fell back by less than theta). :class:`~spikecast.finetune.quantizers.QuantReLU` in
``hysteresis`` mode draws the extra level with probability min(1, up_l frac); ``up_l`` is
what :func:`measure_up_rates` counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from spikecast.schemes.sigma_delta import SigmaDeltaModel


def measure_up_rates(snn: SigmaDeltaModel, frames: torch.Tensor) -> dict[int, float]:
    """Per hidden (ReLU) population of ``snn``, keyed by its stage index: up_l = (neurons
    settled one level above floor(ReLU(v) / theta)) / (sum of frac = ReLU(v) / theta -
    floor(ReLU(v) / theta)), over the final states of ``frames``; so P(up) ~ up_l x frac
    matches the simulator's count."""
    program = snn.program
    pops = [m for m in program.populations() if program.node_relu[m]]
    ups, fracs = np.zeros(len(pops)), np.zeros(len(pops))
    for frame in frames:
        state = snn.final_state(frame)
        for i, m in enumerate(pops):
            a = np.maximum(state.v[m], 0.0) / program.node_theta[m]
            ups[i] += np.sum(state.count[m] > np.floor(a))
            fracs[i] += np.sum(a - np.floor(a))
    return {
        program.node_stage[m].index: float(u / f) if f > 0 else 0.0
        for m, u, f in zip(pops, ups, fracs, strict=True)
    }
