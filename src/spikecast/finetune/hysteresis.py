"""Quantization-aware training for the sigma-delta scheme (the levers of issue 4).

The model sees what the SNN sees: the 1-bit input [x > input_threshold] (optionally shifted
by up to ``max_shift`` pixels), and every ReLU replaced by a :class:`QuantReLU`:

* ``relu``: a = ReLU(z) (a float first phase on the 1-bit input, e.g. from scratch);
* ``floor``: a = theta floor(ReLU(z) / theta), what the Q-ANN computes;
* ``hysteresis``: what the hysteresis neuron settles to. Its final value is any grid level q
  with |ReLU(z) - q| < theta, i.e. floor or one level above (a value that rose, then fell).
  Training draws the extra level with probability min(1, up_l * frac), frac = ReLU(z) /
  theta - floor(ReLU(z) / theta), ``up_l`` per layer as :func:`measure_up_rates` measures
  it in the event-driven simulator; in eval mode it is ``floor``.

Every quantizer passes ReLU's gradient (straight-through). The loss adds the expected spike
cost: cross-entropy + ``spike_weight`` x (sum over quantized layers of ReLU(z) / theta_l) /
neurons. The learning rate is constant or cosine over all steps (as in ``spikecast.zoo.train``).
Seeded; Adam; ``device`` runs the steps on another torch device (CPU runs are bitwise
reproducible).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from spikecast.choice import Choice
from spikecast.schemes.sigma_delta.neuron import check_theta
from spikecast.zoo.train import LRSchedule, random_shift

if TYPE_CHECKING:
    from spikecast.schemes.sigma_delta import SigmaDeltaModel


class Quantizer(Choice):
    """What replaces every ReLU during training (see module docstring)."""

    RELU = "relu"
    FLOOR = "floor"
    HYSTERESIS = "hysteresis"


class QuantReLU(nn.Module):
    """ReLU, floor or hysteresis quantizer forward, ReLU gradient backward; records
    ``levels`` = sum of ReLU(z) / theta per sample (the expected spikes of the layer)."""

    def __init__(self, theta: float, mode: Quantizer | str = Quantizer.FLOOR, up: float = 0.0):
        super().__init__()
        self.theta = check_theta(theta)
        self.mode = Quantizer(mode)
        if not (up >= 0 and math.isfinite(up)):
            raise ValueError(f"hysteresis up rate must be a number >= 0, got {up}")
        self.up = float(up)
        self.levels = torch.zeros(())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        a = torch.relu(z)
        self.levels = (a / self.theta).flatten(1).sum(1)
        if self.mode is Quantizer.RELU:
            return a
        n = torch.floor(a / self.theta)
        if self.mode is Quantizer.HYSTERESIS and self.training and self.up > 0:
            frac = a / self.theta - n
            n = n + (torch.rand_like(a) < self.up * frac).to(a.dtype)
        return a + (n * self.theta - a).detach()


@dataclass(frozen=True)
class FinetuneConfig:
    """Training hyperparameters. ``theta``: one level for every ReLU or one per ReLU (in
    the order the forward calls them); ``up``: the hysteresis rates, likewise; ``epochs``
    may be 0 (no step)."""

    theta: float | tuple[float, ...] = 1.0
    epochs: int = 2
    lr: float = 2e-4
    batch_size: int = 128
    spike_weight: float = 0.05
    input_threshold: float = 0.2
    seed: int = 0
    quantizer: Quantizer = Quantizer.FLOOR
    up: float | tuple[float, ...] = 0.0
    schedule: LRSchedule = LRSchedule.CONSTANT
    max_shift: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantizer", Quantizer(self.quantizer))
        object.__setattr__(self, "schedule", LRSchedule(self.schedule))
        if self.epochs < 0 or self.batch_size < 1 or self.max_shift < 0:
            raise ValueError(
                f"need epochs >= 0, batch_size >= 1 and max_shift >= 0; got {self.epochs}, "
                f"{self.batch_size}, {self.max_shift}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)) or not self.spike_weight >= 0:
            raise ValueError(
                f"need lr > 0 and spike_weight >= 0; got {self.lr} and {self.spike_weight}"
            )


def _per_layer(value: float | Sequence[float], n: int, what: str) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * n
    if len(value) != n:
        raise ValueError(f"{len(value)} values of {what} given for {n} ReLU layers")
    return [float(v) for v in value]


def relu_sites(model: nn.Module) -> list[str]:
    """Names of the nn.ReLU modules of ``model`` in the order its forward calls them (the
    order of the SNN's populations); shared or functional ReLUs are refused, since each
    ReLU becomes one quantizer with its own theta."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # fx raises many types for untraceable code
        raise ValueError(f"fine-tuning traces the model with torch.fx: {exc}") from exc
    modules = dict(model.named_modules())
    order: list[str] = []
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], nn.ReLU):
            if node.target in order:
                raise ValueError(f"ReLU module {node.target!r} is called more than once; give "
                                 "each use its own nn.ReLU to fine-tune it")
            order.append(node.target)
        elif node.target in (F.relu, torch.relu, torch.relu_, "relu", "relu_"):
            raise ValueError(f"functional ReLU at node {node.name!r} cannot be quantized; use "
                             "nn.ReLU modules to fine-tune the model")
    if not order:
        raise ValueError("fine-tuning needs nn.ReLU modules to quantize; none found")
    return order


def quantized_copy(model: nn.Module, config: FinetuneConfig) -> tuple[nn.Module, list[QuantReLU]]:
    """A deep copy of ``model`` with every nn.ReLU replaced by a :class:`QuantReLU`, the
    per-layer settings taken in call order (see :func:`relu_sites`)."""
    qmodel = copy.deepcopy(model)
    sites = relu_sites(qmodel)
    thetas = _per_layer(config.theta, len(sites), "theta")
    ups = _per_layer(config.up, len(sites), "hysteresis up rate")
    quantizers = []
    for site, theta, up in zip(sites, thetas, ups, strict=True):
        parent, _, name = site.rpartition(".")
        q = QuantReLU(theta, config.quantizer, up)
        setattr(qmodel.get_submodule(parent), name, q)
        quantizers.append(q)
    return qmodel, quantizers


def finetune(
    model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, config: FinetuneConfig,
    n_neurons: int,
) -> nn.Module:
    """Return a trained copy of ``model`` on the CPU (same architecture, ``model`` untouched)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    qmodel, quantizers = quantized_copy(model, config)
    qmodel.to(config.device).train()
    opt = torch.optim.Adam(qmodel.parameters(), lr=config.lr)
    total = max(1, config.epochs * math.ceil(len(x_train) / config.batch_size))
    cosine = config.schedule is LRSchedule.COSINE
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1.0 + math.cos(math.pi * t / total)) if cosine else 1.0
    )
    for _ in range(config.epochs):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            xb = random_shift(x_train[idx], config.max_shift, generator)
            xb = (xb > config.input_threshold).float().to(config.device)
            logits = qmodel(xb)
            spikes = sum(q.levels for q in quantizers) / n_neurons
            loss = F.cross_entropy(logits, y_train[idx].to(config.device))
            loss = loss + config.spike_weight * spikes.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    tuned = copy.deepcopy(model)
    tuned.load_state_dict({k: v.cpu() for k, v in qmodel.state_dict().items()})
    return tuned.eval()


def measure_up_rates(snn: SigmaDeltaModel, frames: torch.Tensor) -> tuple[float, ...]:
    """Per hidden (ReLU) population of ``snn``: up_l = (neurons settled one level above
    floor(ReLU(v) / theta)) / (sum of frac = ReLU(v) / theta - floor(ReLU(v) / theta)), over
    the final states of ``frames``; so P(up) ~ up_l x frac matches the simulator's count."""
    program = snn.program
    pops = [m for m in program.populations() if program.node_relu[m]]
    ups, fracs = np.zeros(len(pops)), np.zeros(len(pops))
    for frame in frames:
        state = snn.final_state(frame)
        for i, m in enumerate(pops):
            a = np.maximum(state.v[m], 0.0) / program.node_theta[m]
            ups[i] += np.sum(state.count[m] > np.floor(a))
            fracs[i] += np.sum(a - np.floor(a))
    return tuple(float(u / f) if f > 0 else 0.0 for u, f in zip(ups, fracs, strict=True))
