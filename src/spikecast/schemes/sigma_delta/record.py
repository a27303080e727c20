"""What a sigma-delta simulation of a batch of frames records (both simulators fill it).

Per frame f and reported time point g: ``out_q_at[f, g]`` and ``out_v_at[f, g]`` (the output
neurons' signed counts and membrane potentials), ``spikes_at`` (cumulative
neuron spikes, positive + negative), ``updates_at`` (cumulative synaptic updates: every
spike, input spike and pool message x its fan-out). Per frame and node m (node 0 = input):
``pos``/``neg`` spikes of population nodes, ``updates[:, m]`` updates caused by node m's
spikes (delivered along its outgoing synapse edges), ``updates_in[:, m]`` updates delivered
into population m, ``pool_msgs[:, m]`` messages of max-pool node m, and the output layer's
final membrane potentials ``out_v`` and counts ``out_q``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class SimRecord:
    times: np.ndarray
    out_q_at: np.ndarray
    out_v_at: np.ndarray
    spikes_at: np.ndarray
    updates_at: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    updates: np.ndarray
    pool_msgs: np.ndarray
    input_spikes: np.ndarray
    out_v: np.ndarray
    out_q: np.ndarray
    updates_in: np.ndarray

    @property
    def pred_at(self) -> np.ndarray:
        """Readout at every time point (F, G): most spikes, ties by the larger potential."""
        return readout(self.out_q_at, self.out_v_at)

    @property
    def final_pred(self) -> np.ndarray:
        """argmax of the output counts, ties by the larger membrane potential."""
        return readout(self.out_q, self.out_v)

    @staticmethod
    def concat(records: list[SimRecord]) -> SimRecord:
        """Join records of consecutive batches (same time points)."""
        first = records[0]
        fields = {
            name: np.concatenate([getattr(r, name) for r in records])
            for name in first.__dataclass_fields__
            if name != "times"
        }
        return SimRecord(times=first.times, **fields)


def readout(count: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Along the last axis: index of the largest count, ties by larger v, then lower index."""
    top = count == count.max(axis=-1, keepdims=True)
    return np.where(top, v, -np.inf).argmax(axis=-1)


def time_points(duration: float, n: int) -> np.ndarray:
    """n evenly spaced reporting times from 0 to ``duration`` (TU)."""
    if n < 2:
        raise ValueError(f"need at least 2 time points, got {n}")
    return np.linspace(0.0, duration, n)
