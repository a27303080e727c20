"""Per-layer fidelity: how closely each SNN population reproduces the ANN activation.

For synaptic stage l with ANN activation a_l (after its ReLU when it has one) and the SNN's
per-neuron output s_l in the same units (rate x threshold x lambda_l for rate coding, the
quantized value q theta_l for sigma-delta), over every sample and neuron of the layer:

    correlation_l = Pearson(s_l, a_l)
    mae_l = mean |s_l - a_l|,   relative_mae_l = mae_l / mean |a_l|

The output layer (no ReLU) is compared with its raw values: a scheme whose output neurons
rectify shows its loss of negative logits there, which does not change the argmax.
When the SNN output is only known up to a scale (spike counts of an analog circuit), only
the correlation is defined and the MAEs are None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from spikecast.ir.graph import Network


@dataclass(frozen=True)
class LayerFidelity:
    """Agreement of one population with the ANN (see module docstring)."""

    name: str
    correlation: float | None
    mae: float | None
    relative_mae: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ann_stage_activations(net: Network, x: torch.Tensor) -> list[torch.Tensor]:
    """The ANN activation of every neuron population: its output, rectified if a ReLU
    follows it."""
    acts = net.activations(x)
    return [acts[s.index].clamp(min=0) if s.relu else acts[s.index]
            for s in net.stages() if s.population]


def pearson(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Pearson correlation of the flattened tensors; None when either is constant."""
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    denom = float(a.norm() * b.norm())
    return float((a * b).sum()) / denom if denom > 0 else None


def layer_fidelity(
    net: Network, x: torch.Tensor, snn_outputs: list[torch.Tensor], *, scaled: bool = True
) -> list[LayerFidelity]:
    """Fidelity of every synaptic stage of ``net`` on inputs ``x`` (see module docstring).

    ``snn_outputs[l]`` is the SNN's output of stage l, (batch, *out_shape) or (batch, n);
    ``scaled`` False means it is only proportional to the activation (MAE left None).
    """
    with torch.no_grad():
        acts = ann_stage_activations(net, x)
    if len(acts) != len(snn_outputs):
        raise ValueError(
            f"{len(snn_outputs)} SNN layer outputs for {len(acts)} populations of the ANN"
        )
    names = [s.name for s in net.stages() if s.population]
    result = []
    for name, ann, snn in zip(names, acts, snn_outputs, strict=True):
        if snn.numel() != ann.numel():
            raise ValueError(
                f"layer {name!r}: SNN output has {snn.numel()} values, the ANN {ann.numel()}"
            )
        a, s = ann.double().flatten(), snn.double().flatten()
        mae = rel = None
        if scaled:
            mae = float((s - a).abs().mean())
            scale = float(a.abs().mean())
            rel = mae / scale if scale > 0 else None
        result.append(LayerFidelity(name, pearson(s, a), mae, rel))
    return result
