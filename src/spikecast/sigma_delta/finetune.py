"""Quantization-aware fine-tuning for the sigma-delta scheme (the levers of issue 4).

The model sees what the SNN sees: the 1-bit input [x > input_threshold], and every ReLU
replaced by the floor quantizer a = theta floor(ReLU(z) / theta) that the hysteresis
quantizer settles to (straight-through gradient of ReLU). The loss adds the expected spike
cost: cross-entropy + ``spike_weight`` x (sum over quantized layers of a / theta) / neurons,
i.e. the Q-ANN's spikes per neuron. Seeded; CPU; Adam.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from spikecast.sigma_delta.neuron import check_theta


class FloorQuantReLU(nn.Module):
    """theta floor(ReLU(z) / theta) forward, ReLU gradient backward; records a / theta."""

    def __init__(self, theta: float) -> None:
        super().__init__()
        self.theta = check_theta(theta)
        self.levels = torch.zeros(())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        a = torch.relu(z)
        q = torch.floor(a / self.theta) * self.theta
        self.levels = (a / self.theta).flatten(1).sum(1)
        return a + (q - a).detach()


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning hyperparameters (theta is the shared quantization level trained for)."""

    theta: float = 1.0
    epochs: int = 2
    lr: float = 2e-4
    batch_size: int = 128
    spike_weight: float = 0.05
    input_threshold: float = 0.2
    seed: int = 0


def _quantized_copy(model: nn.Module, theta: float) -> tuple[nn.Module, list[FloorQuantReLU]]:
    qmodel = copy.deepcopy(model)
    quantizers = []
    for parent in qmodel.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                q = FloorQuantReLU(theta)
                setattr(parent, name, q)
                quantizers.append(q)
    if not quantizers:
        raise ValueError("fine-tuning needs nn.ReLU modules to quantize; none found")
    return qmodel, quantizers


def finetune(
    model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, config: FinetuneConfig,
    n_neurons: int,
) -> nn.Module:
    """Return a fine-tuned copy of ``model`` (same architecture, ``model`` untouched)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    qmodel, quantizers = _quantized_copy(model, config.theta)
    qmodel.train()
    opt = torch.optim.Adam(qmodel.parameters(), lr=config.lr)
    for _ in range(config.epochs):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            xb = (x_train[idx] > config.input_threshold).float()
            logits = qmodel(xb)
            spikes = sum(q.levels for q in quantizers) / n_neurons
            loss = F.cross_entropy(logits, y_train[idx]) + config.spike_weight * spikes.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    tuned = copy.deepcopy(model)
    tuned.load_state_dict(qmodel.state_dict())
    return tuned.eval()
