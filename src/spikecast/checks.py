"""Checks of what enters spikecast: inputs, labels, weights and seeds.

Each raises :class:`~spikecast.errors.SpikecastError` naming what is wrong and what is
allowed. They run where data enters (a simulator's input, a model's capture, a file's
tensors), once.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from spikecast.errors import SpikecastError

MAX_SEED = 2**32 - 1  # the widest range every generator accepts (numpy, scikit-learn, torch)


def require_finite(x: torch.Tensor, what: str = "inputs") -> None:
    """Raise naming the first sample that holds a NaN or an infinity."""
    if x.numel() and not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x)).reshape(len(x), -1).any(1).nonzero()[0, 0] if x.dim() else 0
        raise SpikecastError(
            f"{what} contain NaN or infinite values (first at sample {int(bad)})"
        )


def require_unit_interval(x: torch.Tensor, what: str = "inputs") -> None:
    """Raise unless every value of ``x`` is finite and in [0, 1], naming the first sample
    outside (spikecast's input codings read a value as an intensity or a probability)."""
    require_finite(x, what)
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        flat = x.reshape(len(x), -1) if x.dim() else x.reshape(1, 1)
        bad = int(((flat < 0) | (flat > 1)).any(1).nonzero()[0, 0])
        raise SpikecastError(
            f"{what} range over [{float(x.min()):.4g}, {float(x.max()):.4g}] (first outside "
            f"at sample {bad}); spikecast needs inputs in [0, 1]: rescale them, e.g. "
            "x / 255 for pixels or (x - min) / (max - min)"
        )


def require_labels(y: torch.Tensor, n_inputs: int, n_classes: int) -> None:
    """Raise unless ``y`` holds ``n_inputs`` >= 1 integer labels in [0, n_classes)."""
    if n_inputs < 1:
        raise SpikecastError("no samples to evaluate (x is empty); give at least one")
    if y.dim() != 1:
        raise SpikecastError(f"labels must be 1-D (one per input), got shape {tuple(y.shape)}")
    if len(y) != n_inputs:
        raise SpikecastError(f"{n_inputs} inputs but {len(y)} labels")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise SpikecastError(f"labels must be integers, got dtype {y.dtype}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= n_classes:
        raise SpikecastError(
            f"labels span [{lo}, {hi}] but the model has {n_classes} classes "
            f"(labels 0..{n_classes - 1})"
        )


def require_finite_tensors(tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise naming the first tensor that holds a NaN or an infinity (weights, biases)."""
    for name, t in tensors.items():
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            n_bad = int((~torch.isfinite(t)).sum())
            raise SpikecastError(
                f"{where}: tensor {name!r} holds {n_bad} NaN or infinite value(s) of "
                f"{t.numel()}; spikecast needs finite weights and biases"
            )


def require_seed(value: int, what: str = "seed") -> int:
    """Return ``value`` if it is an integer in [0, MAX_SEED], else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise SpikecastError(f"{what} must be an integer in [0, {MAX_SEED}], got {value!r}")
    return value
