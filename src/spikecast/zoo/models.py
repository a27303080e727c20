"""Reference architectures from the two papers, and a VGG- and a ResNet-style MNIST network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
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


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


def mnist_vgg() -> nn.Module:
    """VGG-style: 2x(16C3-BN-ReLU)-MP2-2x(32C3-BN-ReLU)-MP2-2x(32C3-BN-ReLU)-AP7-10FC."""
    return nn.Sequential(
        *_conv_bn_relu(1, 16), *_conv_bn_relu(16, 16), nn.MaxPool2d(2, 2),
        *_conv_bn_relu(16, 32), *_conv_bn_relu(32, 32), nn.MaxPool2d(2, 2),
        *_conv_bn_relu(32, 32), *_conv_bn_relu(32, 32), nn.AvgPool2d(7),
        nn.Flatten(), nn.Linear(32, 10),
    )


class ResidualBlock(nn.Module):
    """relu(x + BN(conv(relu(BN(conv(x)))))), 3x3 convolutions, same channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


def mnist_resnet() -> nn.Module:
    """ResNet-style: 16C3-BN-ReLU stem, AP2, two residual blocks (16 ch), AP2, 10FC."""
    return nn.Sequential(
        *_conv_bn_relu(1, 16), nn.AvgPool2d(2, 2),
        ResidualBlock(16), ResidualBlock(16), nn.AvgPool2d(2, 2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
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
        Architecture("mnist-vgg", "mnist", (1, 28, 28), mnist_vgg, mnist_vgg.__doc__ or ""),
        Architecture("mnist-resnet", "mnist", (1, 28, 28), mnist_resnet,
                     mnist_resnet.__doc__ or ""),
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
