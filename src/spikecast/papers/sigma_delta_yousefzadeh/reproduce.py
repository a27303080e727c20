"""Reproduce Table I and Fig. 2-4 of the sigma-delta paper on MNIST with ``mnist-cnn`` (or
another model of that architecture, e.g. the shipped ``mnist-cnn-sd``).

Rows: the Q-ANN and the event-driven SNN at every theta (plus optional per-layer
calibrated thetas), the rate-coded baseline (SNN toolbox style) at 25 and 15 steps, and,
with fine-tuning (:func:`spikecast.finetune.api.finetune` at theta = ``finetune_thetas[0]``,
its keyword arguments in ``finetune``), the same sigma-delta rows for the fine-tuned model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from spikecast.finetune.api import finetune
from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import Conv2d, Linear, Network
from spikecast.measure.counts import ann_macs, layer_macs, neuron_count, synapse_count
from spikecast.measure.result import SchemeResult
from spikecast.schemes import convert, get_recipe
from spikecast.schemes.sigma_delta import SigmaDeltaRecipe
from spikecast.schemes.sigma_delta.encoding import binarize
from spikecast.schemes.sigma_delta.thresholds import Calibrated, ThresholdSpec, describe, label

PAPER: dict[str, Any] = {
    "ann_accuracy": 0.9921,
    "ann_macs": 455_000,
    "neurons": 15_000,
    "synapses": 100_000,
    "synaptic_updates_to_ann_accuracy": 600_000,
    "rows": [
        {"scheme": "qann", "threshold": 1.0, "accuracy": 0.9881},
        {"scheme": "sigma-delta", "threshold": 1.0, "accuracy": 0.9919, "spikes_per_neuron": 0.25},
        {"scheme": "qann", "threshold": 2.0, "accuracy": 0.9644},
        {"scheme": "sigma-delta", "threshold": 2.0, "accuracy": 0.9726, "spikes_per_neuron": 0.08},
        {"scheme": "rate", "steps": 25, "accuracy": 0.9918, "spikes_per_neuron": 0.48},
        {"scheme": "rate", "steps": 15, "accuracy": 0.9880, "spikes_per_neuron": 0.26},
    ],
}


def paper_formula_macs(net: Network) -> int:
    """The paper's footnote count: a Conv2d as out_h out_w out_ch kh kw (no input channels),
    a Linear as in x out (455,712 for mnist-cnn, vs 1,043,712 exact)."""
    total = 0
    for s in net.stages():
        if isinstance(s.layer, Conv2d):
            total += math.prod(s.out_shape) * math.prod(s.layer.weight.shape[2:])
        elif isinstance(s.layer, Linear):
            total += layer_macs(s.layer, s.in_shape, s.out_shape)
    return total


@dataclass(frozen=True)
class ReproduceConfig:
    """What to run; ``limit`` takes the first N test frames (None: all 10,000); ``model``
    (default: the pretrained mnist-cnn) is reported under ``model_name``."""

    thetas: tuple[float, ...] = (1.0, 2.0)
    calibrated: tuple[float, ...] = ()
    limit: int | None = None
    data_dir: str | None = None
    seed: int = 0
    rate_steps: tuple[int, ...] = (25, 15)
    calib_samples: int = 2000
    finetune: Mapping[str, Any] | None = None
    finetune_thetas: tuple[float, ...] = (1.0,)
    model: nn.Module | None = field(default=None, compare=False)
    model_name: str = "mnist-cnn"


def weight_count(net: Network) -> int:
    """Number of weights of the synaptic layers (the paper's "Num Synapses", ~100k)."""
    return sum(int(s.layer.weight.numel()) for s in net.stages() if hasattr(s.layer, "weight"))


def updates_to_reach(result: SchemeResult, target: float) -> float | None:
    """Mean cumulative synaptic updates at the first time point with accuracy >= target."""
    if result.cumulative is None:
        raise ValueError(f"scheme {result.scheme!r} reports no cumulative synaptic updates")
    for updates, acc in zip(result.cumulative.synaptic_updates, result.curve.accuracy,
                            strict=True):
        if acc >= target:
            return float(updates)
    return None


def _accuracy(model: nn.Module | Network, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return float((pred == y).double().mean())


def _sigma_delta_rows(
    net: Network, model_name: str, specs: Sequence[ThresholdSpec], calib_x: torch.Tensor,
    x: torch.Tensor, y: torch.Tensor, ann_accuracy: float, log: Callable[[str], None],
) -> tuple[list[dict], dict[str, Any]]:
    rows, details = [], {}
    for spec in specs:
        recipe = SigmaDeltaRecipe.paper(theta=spec)
        snn = recipe.build(net, recipe.calibrate(net, calib_x))
        name = label(spec)
        log(f"{model_name}: Q-ANN and event-driven SNN at theta={name}")
        qann_acc = snn.qann_accuracy(x, y)
        res = snn.evaluate(x, y, progress=True)
        common = {"threshold": describe(spec), "thresholds": list(snn.thetas), "model": model_name}
        rows.append({"scheme": "qann", **common, "accuracy": qann_acc})
        reach = updates_to_reach(res, ann_accuracy)
        rows.append({
            "scheme": "sigma-delta", **common, "accuracy": res.accuracy,
            "spikes_per_neuron": res.spikes_per_neuron,
            "synaptic_updates": res.synaptic_events,
            "positive_spikes": res.details.positive_spikes,
            "negative_spikes": res.details.negative_spikes,
            "pool_messages": res.details.pool_messages,
            "input_spikes": res.input_spikes,
            "synaptic_updates_to_ann_accuracy": reach,
            "synaptic_updates_to_final_accuracy": updates_to_reach(res, res.accuracy),
        })
        details[f"{model_name} theta={name}"] = res.to_dict()
    return rows, details


def _rate_rows(
    model: nn.Module, model_name: str, steps: Sequence[int], calib_x: torch.Tensor,
    x: torch.Tensor, y: torch.Tensor, log: Callable[[str], None],
) -> list[dict]:
    rows = []
    for t in steps:
        log(f"rate-coded baseline, {t} steps")
        recipe = get_recipe("rate", steps=t, v_init=0.0)  # the toolbox's v(0) = 0
        res = convert(model, recipe, calib_x).evaluate(x, y, progress=True)
        rows.append({
            "scheme": "rate", "steps": t, "model": model_name, "accuracy": res.accuracy,
            "spikes_per_neuron": res.spikes_per_neuron, "synaptic_updates": res.synaptic_events,
        })
    return rows


def reproduce(config: ReproduceConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the reproduction and return the JSON report (see the issue's contract)."""
    from spikecast.datasets.loaders import load_dataset
    from spikecast.zoo.pretrained import load_pretrained

    torch.manual_seed(config.seed)
    data = load_dataset("mnist", config.data_dir, seed=config.seed)
    n = len(data.x_test) if config.limit is None else min(config.limit, len(data.x_test))
    x, y = data.x_test[:n], data.y_test[:n]
    calib_x = data.x_train[: config.calib_samples]
    model = config.model if config.model is not None else load_pretrained("mnist-cnn")[0]
    model.eval()
    net = capture(model, (1, 28, 28))
    ann_acc = _accuracy(model, x, y)
    specs: list[ThresholdSpec] = [*config.thetas, *(Calibrated(f) for f in config.calibrated)]
    rows, details = _sigma_delta_rows(net, config.model_name, specs, calib_x, x, y, ann_acc,
                                      log)
    report: dict[str, Any] = {
        "model": config.model_name,
        "n_samples": n,
        "ann_accuracy": ann_acc,
        "ann_accuracy_1bit_input": _accuracy(model, binarize(x), y),
        "ann_macs": ann_macs(net),
        "ann_macs_paper_formula": paper_formula_macs(net),
        "neurons": neuron_count(net),
        "synapses": weight_count(net),
        "connections": synapse_count(net),
    }
    if config.finetune is not None:
        log(f"quantization-aware fine-tuning: {dict(config.finetune)}")
        tuned = finetune(net, SigmaDeltaRecipe(theta=config.finetune_thetas[0]), data,
                         seed=config.seed, calib_samples=config.calib_samples,
                         **config.finetune)
        tuned_net = tuned.network
        report["finetuned_ann_accuracy"] = _accuracy(tuned_net, x, y)
        report["finetuned_ann_accuracy_1bit_input"] = _accuracy(tuned_net, binarize(x), y)
        report["finetune"] = tuned.sidecar()["finetune"]
        more, more_details = _sigma_delta_rows(
            tuned_net, "finetuned", config.finetune_thetas, calib_x, x, y, ann_acc, log
        )
        rows += more
        details |= more_details
    if config.rate_steps:
        rows += _rate_rows(model, config.model_name, config.rate_steps, calib_x, x, y, log)
    report["rows"] = rows
    report["paper"] = PAPER
    report["details"] = details
    return report
