"""Linear intensity-to-delay input coding (paper 004, Sec. III).

A pixel p in [0, 1] fires one +1 spike at time t = 1 - p (in time units, TU) if
p > ``threshold`` and never otherwise, so a frame lasts 1 - threshold TU (0.8 TU at 0.2).
The spike's value 1 makes the network's input the 1-bit image [p > threshold] (compared
in the input's own dtype, so float32 0.2 does not exceed the threshold 0.2).
Events are ordered by time; equal times by the pixel's row-major (flattened) index.
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


def binarize(x: torch.Tensor, threshold: float = DEFAULT_INPUT_THRESHOLD) -> torch.Tensor:
    """The 1-bit input the spikes encode: 1 where x > threshold, else 0."""
    check_input(x, threshold)
    return (x > threshold).to(x.dtype)


@dataclass(frozen=True)
class InputEvents:
    """One frame's input spikes: flat pixel indices and times, in processing order."""

    index: np.ndarray
    time: np.ndarray


def encode_frames(
    x: torch.Tensor, threshold: float = DEFAULT_INPUT_THRESHOLD
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spikes of a batch of frames (batch, *shape): flat pixel indices, per-frame offsets
    (frame f's events are ``[ptr[f]:ptr[f + 1]]``) and times t = 1 - p, each frame's events
    sorted by (t, index)."""
    check_input(x, threshold)
    flat = x.detach().reshape(len(x), -1).cpu()
    frame, index = np.nonzero((flat > threshold).numpy())
    time = 1.0 - flat.to(torch.float64).numpy()[frame, index]
    order = np.lexsort((index, time, frame))
    ptr = np.concatenate([[0], np.cumsum(np.bincount(frame, minlength=len(x)))])
    return index[order].astype(np.int64), ptr.astype(np.int64), time[order]


def encode_frame(x: torch.Tensor, threshold: float = DEFAULT_INPUT_THRESHOLD) -> InputEvents:
    """Spikes of one frame (any shape): t = 1 - p for p > threshold, sorted by (t, index)."""
    index, _, time = encode_frames(x.reshape(1, -1), threshold)
    return InputEvents(index, time)


def frame_duration(threshold: float = DEFAULT_INPUT_THRESHOLD) -> float:
    """Latest possible input spike time, 1 - threshold TU."""
    return 1.0 - threshold
