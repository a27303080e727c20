"""Input checks every simulator shares."""

from __future__ import annotations

import torch


def require_finite(x: torch.Tensor, what: str = "inputs") -> None:
    """Raise ValueError naming the first sample that holds a NaN or an infinity."""
    if x.numel() and not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x)).reshape(len(x), -1).any(1).nonzero()[0, 0] if x.dim() else 0
        raise ValueError(f"{what} contain NaN or infinite values (first at sample {int(bad)})")
