"""Reference architectures from the two papers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Architecture:
    """A named reference model: its builder, dataset and per-sample input shape."""

    name: str
    dataset: str
    input_shape: tuple[int, ...]
    build: Callable[[], nn.Module]
    description: str


def wine_fc() -> nn.Module:
    """13-30-3, ReLU, no bias (SSNN paper, Table I)."""
    return nn.Sequential(
        nn.Linear(13, 30, bias=False), nn.ReLU(), nn.Linear(30, 3, bias=False)
    )


def mnist_fc() -> nn.Module:
    """784-500-10, ReLU, no bias (SSNN paper, Table IV)."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 500, bias=False), nn.ReLU(), nn.Linear(500, 10, bias=False)
    )


def mnist_cnn() -> nn.Module:
    """16C5-2MP2-8C5-2MP2-256FC(dropout 0.5)-10FC, 'same' padding (sigma-delta paper)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(16, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(8 * 7 * 7, 256), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(256, 10),
    )


def digits_mlp() -> nn.Module:
    """64-100-10 MLP on the 8x8 digits (benchmark model)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10))


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("wine-fc", "wine", (13,), wine_fc, wine_fc.__doc__ or ""),
        Architecture("mnist-fc", "mnist", (1, 28, 28), mnist_fc, mnist_fc.__doc__ or ""),
        Architecture("mnist-cnn", "mnist", (1, 28, 28), mnist_cnn, mnist_cnn.__doc__ or ""),
        Architecture("digits-mlp", "digits", (1, 8, 8), digits_mlp, digits_mlp.__doc__ or ""),
    )
}


def get_architecture(name: str) -> Architecture:
    """Look up a reference architecture; ``ValueError`` lists the known names."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}"
        ) from None
