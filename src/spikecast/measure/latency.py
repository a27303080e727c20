"""Prediction-settling latency and accuracy at fixed fractions of the window.

From a per-sample prediction trace P[b, k] (the readout at time point t_k, k = 0..K-1):

* settling index k*_b = the smallest k with P[b, j] = P[b, K-1] for every j >= k; the
  settling latency of sample b is t_{k*_b} (the time after which its prediction stops
  changing); :class:`Latency` holds its mean, median and 95th percentile;
* accuracy at fraction f = accuracy of P[:, k_f], k_f the last point with t_k <= f t_{K-1}
  (None when no point lies that early).

Every :class:`~spikecast.measure.result.SchemeResult` carries its trace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from spikecast.measure.result import Curve, PredictionTrace

DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Latency:
    """Settling latency over samples and accuracy at fractions of the window."""

    unit: str
    mean: float
    median: float
    p95: float
    window: float
    accuracy_at: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def settling_index(predictions: torch.Tensor) -> torch.Tensor:
    """k*_b per sample of ``predictions`` (B, K): first point from which it never changes."""
    if predictions.ndim != 2 or predictions.shape[1] == 0:
        raise ValueError(f"predictions must be (samples, time points), got {predictions.shape}")
    differs = predictions != predictions[:, -1:]
    k = predictions.shape[1]
    positions = torch.arange(k).expand_as(predictions)
    last_differing = torch.where(differs, positions, torch.full_like(positions, -1)).amax(1)
    return last_differing + 1


def _index_at_fraction(times: tuple[float, ...], fraction: float) -> int | None:
    if not 0 < fraction <= 1:
        raise ValueError(f"fractions must be in (0, 1], got {fraction}")
    limit = fraction * times[-1]
    inside = [k for k, t in enumerate(times) if t <= limit * (1 + 1e-12)]
    return inside[-1] if inside else None


def accuracy_at_fractions(
    curve: Curve, fractions: tuple[float, ...] = DEFAULT_FRACTIONS
) -> dict[str, float | None]:
    """Accuracy of an accuracy-vs-time ``curve`` at each fraction of its last time."""
    if not curve.x:
        raise ValueError("the accuracy curve is empty")
    times = tuple(curve.x)
    out: dict[str, float | None] = {}
    for f in fractions:
        k = _index_at_fraction(times, f)
        out[f"{f:g}"] = None if k is None else float(curve.accuracy[k])
    return out


def latency(
    trace: PredictionTrace, labels: torch.Tensor, fractions: tuple[float, ...] = DEFAULT_FRACTIONS
) -> Latency:
    """Settling latency statistics and accuracy at ``fractions`` of the window."""
    if labels.shape != (trace.predictions.shape[0],):
        raise ValueError(
            f"{trace.predictions.shape[0]} traced samples but labels of shape "
            f"{tuple(labels.shape)}"
        )
    if labels.numel() == 0:
        raise ValueError("latency needs at least one sample")
    times = torch.tensor(trace.times, dtype=torch.float64)
    settle = times[settling_index(trace.predictions)]
    correct = (trace.predictions == labels.unsqueeze(1)).double().mean(0)
    curve = Curve(trace.unit, list(trace.times), correct.tolist())
    return Latency(
        unit=trace.unit,
        mean=float(settle.mean()),
        median=float(settle.median()),
        p95=float(torch.quantile(settle, 0.95)),
        window=float(trace.times[-1]),
        accuracy_at=accuracy_at_fractions(curve, fractions),
    )
