"""Q-ANN baseline (paper 004, Table I): the same weights and biases, the coded input
(:class:`~spikecast.schemes.sigma_delta.encoding.InputCoding`: the paper's 1-bit
[x > input_threshold] for one level), and every hidden activation quantized directly:
a_l = theta_l * floor(ReLU(z_l) / theta_l + (1 - h) / 2), where a neuron of hysteresis h
rests after its potential rose to z_l (:mod:`~spikecast.schemes.sigma_delta.neuron`): the
floor for the paper's h = 1 (its Q-ANN), the nearest level for h = 0 (where the SNN's
neurons rest whatever the path), for every population with a ReLU; layers between
populations (Flatten, max-pool, Add, Concat, synaptic layers without ReLU) stay exact. The
output layer is read as argmax of z."""

from __future__ import annotations

import torch

from spikecast.ir.graph import INPUT, Network
from spikecast.schemes.sigma_delta.encoding import InputCoding
from spikecast.schemes.sigma_delta.neuron import check_hysteresis
from spikecast.schemes.sigma_delta.program import float64_layer, population_stages


def quantize(a: torch.Tensor, theta: float, hysteresis: float) -> torch.Tensor:
    """theta * floor(ReLU(a) / theta + (1 - h) / 2)."""
    return torch.floor(a.clamp(min=0) / theta + (1.0 - hysteresis) / 2.0) * theta


def qann_forward(
    net: Network, x: torch.Tensor, thetas: tuple[float, ...], input_threshold: float = 0.2,
    hysteresis: float = 1.0, input_levels: int = 1,
) -> list[torch.Tensor]:
    """Every stage's output in :meth:`Network.stages` order (quantized for hidden
    populations); last entry = logits."""
    hysteresis = check_hysteresis(hysteresis)
    pops = {s.index: theta for s, theta in zip(population_stages(net), thetas, strict=True)}
    outs = {INPUT: InputCoding(input_levels, input_threshold).coded(x)}
    for stage in net.stages():
        a = float64_layer(stage.layer).forward(*(outs[k] for k in stage.sources))
        if stage.index in pops and stage.relu:
            a = quantize(a, pops[stage.index], hysteresis)
        outs[stage.index] = a
    return [a for k, a in outs.items() if k != INPUT]


def qann_predict(
    net: Network, x: torch.Tensor, thetas: tuple[float, ...], input_threshold: float = 0.2,
    batch_size: int = 1000, hysteresis: float = 1.0, input_levels: int = 1,
) -> torch.Tensor:
    """Q-ANN class predictions for ``x``."""
    with torch.no_grad():
        preds = [
            qann_forward(net, x[i : i + batch_size], thetas, input_threshold, hysteresis,
                         input_levels)[-1].argmax(1)
            for i in range(0, len(x), batch_size)
        ]
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)
