"""Linear intensity-to-delay input coding (paper 004, Sec. III), with K levels.

The input is a population of level theta_in = 1/K. A pixel p in [0, 1] sends

    n(p) = #{k = 1..K : p > (k - 1 + c) / K}

spikes of value theta_in, all at time t = 1 - p (TU), so the network's input is the coded
image n(p) / K; c is the ``threshold``. K = 1 is the paper's 1-bit coding: one spike when
p > c (c = 0.2 in the paper); c = 1/2 sends p's nearest level (K = 4: p = 0.3 -> 1 spike,
0.4 -> 2). Thresholds are compared in the input's own dtype, so float32 0.2 does not exceed
the threshold 0.2. The latest spike comes at 1 - c / K TU (0.8 TU for the paper's coding).
Events are ordered by time; equal times by the pixel's row-major (flattened) index; the
n(p) spikes of one pixel leave together, one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spikecast.checks import require_unit_interval

DEFAULT_INPUT_THRESHOLD = 0.2


def check_input(x: torch.Tensor, threshold: float) -> None:
    """Raise ValueError unless ``x`` lies in [0, 1] and 0 <= threshold < 1."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"input threshold must be in [0, 1), got {threshold}")
    require_unit_interval(x.reshape(1, -1) if x.dim() < 2 else x)


@dataclass(frozen=True)
class InputEvents:
    """One frame's input spikes: flat pixel indices, times and spike counts, in order."""

    index: np.ndarray
    time: np.ndarray
    count: np.ndarray


@dataclass(frozen=True)
class InputCoding:
    """K = ``levels`` input levels with rounding point c = ``threshold`` (module docstring)."""

    levels: int = 1
    threshold: float = DEFAULT_INPUT_THRESHOLD

    def __post_init__(self) -> None:
        if isinstance(self.levels, bool) or not float(self.levels).is_integer() or self.levels < 1:
            raise ValueError(f"input_levels must be an integer >= 1, got {self.levels!r}")
        object.__setattr__(self, "levels", int(self.levels))
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"input threshold must be in [0, 1), got {self.threshold}")

    @property
    def level(self) -> float:
        """theta_in = 1 / K, the value one input spike carries."""
        return 1.0 / self.levels

    @property
    def duration(self) -> float:
        """Latest possible input spike time, 1 - c / K TU."""
        return 1.0 - self.threshold / self.levels

    def counts(self, x: torch.Tensor) -> torch.Tensor:
        """n(p) for every value of ``x`` (int64, same shape)."""
        check_input(x, self.threshold)
        k = torch.arange(self.levels, dtype=torch.float64)
        cuts = ((k + self.threshold) / self.levels).to(x.dtype).to(x.device)
        return torch.searchsorted(cuts, x.detach().contiguous().reshape(-1)).reshape(x.shape)

    def coded(self, x: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The input the spikes encode, n(p) * theta_in."""
        return self.counts(x).to(dtype) * self.level

    def frames(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Spikes of a batch of frames (batch, *shape): flat pixel indices, per-frame offsets
        (frame f's events are ``[ptr[f]:ptr[f + 1]]``), times t = 1 - p and spike counts
        n(p), each frame's events sorted by (t, index)."""
        n = self.counts(x).reshape(len(x), -1).cpu().numpy()
        frame, index = np.nonzero(n)
        flat = x.detach().reshape(len(x), -1).cpu().to(torch.float64).numpy()
        time = 1.0 - flat[frame, index]
        order = np.lexsort((index, time, frame))
        ptr = np.concatenate([[0], np.cumsum(np.bincount(frame, minlength=len(x)))])
        return (index[order].astype(np.int64), ptr.astype(np.int64), time[order],
                n[frame, index][order].astype(np.int64))

    def frame(self, x: torch.Tensor) -> InputEvents:
        """Spikes of one frame (any shape), sorted by (t, index)."""
        index, _, time, count = self.frames(x.reshape(1, -1))
        return InputEvents(index, time, count)


def binarize(x: torch.Tensor, threshold: float = DEFAULT_INPUT_THRESHOLD) -> torch.Tensor:
    """The paper's 1-bit input: 1 where x > threshold, else 0 (in x's dtype)."""
    return InputCoding(1, threshold).coded(x, x.dtype)


def encode_frames(
    x: torch.Tensor, threshold: float = DEFAULT_INPUT_THRESHOLD
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's 1-bit spikes of a batch: (indices, per-frame offsets, times); see
    :meth:`InputCoding.frames`."""
    return InputCoding(1, threshold).frames(x)[:3]


def encode_frame(x: torch.Tensor, threshold: float = DEFAULT_INPUT_THRESHOLD) -> InputEvents:
    """The paper's 1-bit spikes of one frame: t = 1 - p for p > threshold."""
    return InputCoding(1, threshold).frame(x)


def frame_duration(threshold: float = DEFAULT_INPUT_THRESHOLD) -> float:
    """Latest possible 1-bit input spike time, 1 - threshold TU."""
    return InputCoding(1, threshold).duration
