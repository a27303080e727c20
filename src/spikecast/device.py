"""Where a simulator or a calibration runs: the ``device`` setting and its resolution."""

from __future__ import annotations

from dataclasses import replace

import torch

from spikecast.choice import Choice
from spikecast.ir.graph import Conv2d, Linear, Network


class Device(Choice):
    """``cpu``; ``cuda`` (an NVIDIA GPU through torch); ``auto``: cuda when torch sees
    one, else cpu."""

    CPU = "cpu"
    CUDA = "cuda"
    AUTO = "auto"


def resolve_device(device: Device | str) -> torch.device:
    """The torch device for a setting; ``cuda`` without a usable GPU is an error."""
    choice = Device(device)
    if choice is Device.CPU or (choice is Device.AUTO and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device='cuda' but torch sees no CUDA GPU (torch {torch.__version__}); "
            "use device='cpu' or device='auto'"
        )
    return torch.device("cuda", torch.cuda.current_device())


def network_on(net: Network, device: torch.device) -> Network:
    """``net`` with the weights and biases of its Linear and Conv2d layers on ``device``."""
    if all(_on(layer, device) for layer in net.layers):
        return net
    layers = [
        replace(layer, weight=layer.weight.to(device),
                bias=None if layer.bias is None else layer.bias.to(device))
        if isinstance(layer, (Linear, Conv2d)) else layer
        for layer in net.layers
    ]
    return net.with_layers(layers)


def _on(layer: object, device: torch.device) -> bool:
    return not isinstance(layer, (Linear, Conv2d)) or layer.weight.device == device
