"""Q-ANN baseline (paper 004, Table I): the same weights and biases, the 1-bit input
[x > input_threshold], and every hidden activation quantized directly (no hysteresis):
a_l = theta_l * floor(ReLU(z_l) / theta_l) for every population with a ReLU; layers between
populations (Flatten, max-pool, Add, Concat, synaptic layers without ReLU) stay exact. The
output layer is read as argmax of z, which equals argmax of floor(z / theta) with ties
broken by z."""

from __future__ import annotations

import torch

from spikecast.ir.graph import INPUT, Network
from spikecast.schemes.sigma_delta.encoding import binarize
from spikecast.schemes.sigma_delta.program import float64_layer, population_stages


def qann_forward(
    net: Network, x: torch.Tensor, thetas: tuple[float, ...], input_threshold: float = 0.2
) -> list[torch.Tensor]:
    """Every stage's output in :meth:`Network.stages` order (quantized for hidden
    populations); last entry = logits."""
    pops = {s.index: theta for s, theta in zip(population_stages(net), thetas, strict=True)}
    outs = {INPUT: binarize(x, input_threshold).to(torch.float64)}
    for stage in net.stages():
        a = float64_layer(stage.layer).forward(*(outs[k] for k in stage.sources))
        if stage.index in pops and stage.relu:
            a = torch.floor(a.clamp(min=0) / pops[stage.index]) * pops[stage.index]
        outs[stage.index] = a
    return [a for k, a in outs.items() if k != INPUT]


def qann_predict(
    net: Network, x: torch.Tensor, thetas: tuple[float, ...], input_threshold: float = 0.2,
    batch_size: int = 1000,
) -> torch.Tensor:
    """Q-ANN class predictions for ``x``."""
    with torch.no_grad():
        preds = [
            qann_forward(net, x[i : i + batch_size], thetas, input_threshold)[-1].argmax(1)
            for i in range(0, len(x), batch_size)
        ]
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)
