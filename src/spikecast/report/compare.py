"""Run the ANN and every scheme on the same samples and build the extended results.

The results dict extends the :class:`~spikecast.measure.counts.RunResults` contract: every scheme
entry gains ``effective_acs``, ``effective_macs``, ``dense_ops``, ``neuron_updates``,
``activation_sparsity``, ``latency``, ``energy_J`` ({preset: {"ann": J, "snn": J}}),
``fidelity``, ``firing``, ``confusion``, ``curves`` (accuracy vs time fraction, spikes per
neuron and operations) and ``wall_s``; ``ann`` gains its workload, sparsities, footprint
and confusion matrix; schemes whose scope excludes the model (an
:class:`~spikecast.schemes.base.UnsupportedGraph`) are listed under ``skipped`` with the
reason, schemes that fail otherwise under ``failed``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from spikecast.checks import require_seed
from spikecast.datasets.loaders import Dataset
from spikecast.energy.base import EnergyPreset, network_counts
from spikecast.energy.presets import all_presets, estimate_energy
from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import Network
from spikecast.measure.counts import ann_macs
from spikecast.measure.fidelity import layer_fidelity
from spikecast.measure.latency import latency
from spikecast.measure.opcounts import Workload, ann_workload, connection_sparsity, footprint_bytes
from spikecast.measure.opcounts import snn_workload as count_snn
from spikecast.measure.result import RunResults, SchemeResult, accuracy
from spikecast.report.adapters import LayerProbe, probe_layers
from spikecast.schemes import convert, get_recipe, recipe_class, scheme_names
from spikecast.schemes.base import SpikingModel, UnsupportedGraph
from spikecast.schemes.params import with_seed

HISTOGRAM_BINS = 20


@dataclass
class CompareConfig:
    """What to compare and how: scheme names and their recipe parameters, test samples
    (``limit`` None = all), calibration and fidelity subset sizes, energy presets."""

    schemes: tuple[str, ...] = field(default_factory=scheme_names)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    limit: int | None = None
    calib_samples: int = 2000
    fidelity_samples: int = 64
    batch_size: int = 256
    seed: int = 0
    presets: dict[str, EnergyPreset] = field(default_factory=all_presets)
    progress: bool = False

    def __post_init__(self) -> None:
        known = scheme_names()
        unknown = [s for s in self.schemes if s not in known]
        if unknown or not self.schemes:
            raise ValueError(f"unknown schemes {unknown}; known: {', '.join(known)}")
        extra = set(self.params) - set(self.schemes)
        if extra:
            raise ValueError(f"parameters given for schemes not compared: {sorted(extra)}")
        for key in ("calib_samples", "fidelity_samples", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        require_seed(self.seed)


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, n_classes: int) -> list[list[int]]:
    """counts[true][predicted]."""
    flat = labels.long() * n_classes + pred.long()
    return torch.bincount(flat, minlength=n_classes**2).reshape(n_classes, n_classes).tolist()


def _calibration(x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    if n >= len(x):
        return x
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx]


def _curves(result: SchemeResult, work: Workload) -> dict[str, Any]:
    """Accuracy vs fraction of the window, vs spikes per neuron and vs operations. Spikes
    and ACs grow linearly with time unless the scheme reports exact cumulative curves."""
    curve = result.curve
    if curve is None or not curve.x or curve.x[-1] <= 0:
        return {}
    end = curve.x[-1]
    frac = [t / end for t in curve.x]
    exact = result.cumulative
    spikes = (list(exact.spikes_per_neuron) if exact
              else [result.spikes_per_neuron * f for f in frac])
    ops = ([work.effective_macs + u for u in exact.synaptic_updates] if exact
           else [work.effective_macs + work.effective_acs * f for f in frac])
    return {
        "time": {"x_label": curve.x_label, "x": curve.x, "fraction": frac,
                 "accuracy": curve.accuracy},
        "spikes": {"x": spikes, "accuracy": curve.accuracy, "exact": exact is not None},
        "ops": {"x": ops, "accuracy": curve.accuracy, "exact": exact is not None},
    }


def _firing(probe: LayerProbe, names: list[str]) -> list[dict[str, Any]]:
    out = []
    for name, counts in zip(names, probe.counts, strict=True):
        per_neuron = counts.mean(0).numpy()
        hist, edges = np.histogram(per_neuron, bins=HISTOGRAM_BINS)
        out.append({"name": name, "label": probe.count_label, "counts": hist.tolist(),
                    "edges": edges.tolist(), "silent_fraction": float((per_neuron == 0).mean())})
    return out


def _scheme_entry(
    net: Network, snn: SpikingModel, result: SchemeResult,
    x: torch.Tensor, y: torch.Tensor, ann_work: Workload, n_classes: int, cfg: CompareConfig,
) -> dict[str, Any]:
    work = count_snn(net, result, x)
    lat = latency(result.trace, y).to_dict()
    confusion = confusion_matrix(result.predictions, y, n_classes)
    sub = x[: cfg.fidelity_samples]
    probe = probe_layers(snn, sub)
    names = [s.name for s in net.stages() if s.population]
    fidelity = [f.to_dict() for f in layer_fidelity(net, sub, probe.outputs,
                                                    scaled=probe.scaled)]
    counts = network_counts(net)
    return result.to_dict() | {
        "effective_acs": work.effective_acs,
        "effective_macs": work.effective_macs,
        "dense_ops": work.dense,
        "neuron_updates": work.neuron_updates,
        "activation_sparsity": work.activation_sparsity,
        "latency": lat,
        "energy_J": estimate_energy(cfg.presets, ann_work, work, counts, result.scheme),
        "workload": work.to_dict(),
        "fidelity": fidelity,
        "firing": _firing(probe, names),
        "confusion": confusion,
        "curves": _curves(result, work),
    }


def compare(model: nn.Module | Network, data: Dataset, cfg: CompareConfig,
            model_name: str = "") -> dict[str, Any]:
    """Evaluate the ANN and every scheme of ``cfg`` on the same test samples of ``data``."""
    net = model if isinstance(model, Network) else capture(model, data.sample_shape)
    x, y = data.x_test[: cfg.limit], data.y_test[: cfg.limit]
    calib = _calibration(data.x_train, cfg.calib_samples, cfg.seed)
    with torch.no_grad():
        ann_pred = torch.cat([net(x[i : i + 1024]).argmax(1) for i in range(0, len(x), 1024)])
    ann_work = ann_workload(net, x)
    run = RunResults(data.name, accuracy(ann_pred, y), ann_macs(net), len(x))
    entries: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in cfg.schemes:
        torch.manual_seed(cfg.seed)
        start = time.perf_counter()
        try:
            params = with_seed(recipe_class(name), cfg.params.get(name, {}), cfg.seed)
            snn = convert(net, get_recipe(name, **params), calib_x=calib)
            result = snn.evaluate(x, y, batch_size=cfg.batch_size, progress=cfg.progress)
        except UnsupportedGraph as exc:
            skipped[name] = str(exc)
            continue
        except ValueError as exc:
            failed[name] = str(exc)
            continue
        run.schemes[name] = result
        entries[name] = _scheme_entry(net, snn, result, x, y, ann_work,
                                      data.n_classes, cfg)
        entries[name]["wall_s"] = time.perf_counter() - start
    out = run.to_dict()
    out["ann"] = {
        "accuracy": run.ann_accuracy,
        "macs": run.ann_macs,
        "effective_macs": ann_work.effective_macs,
        "effective_acs": ann_work.effective_acs,
        "dense_ops": ann_work.dense,
        "activation_sparsity": ann_work.activation_sparsity,
        "connection_sparsity": connection_sparsity(net),
        "footprint_bytes": footprint_bytes(net),
        "workload": ann_work.to_dict(),
        "confusion": confusion_matrix(ann_pred, y, data.n_classes),
        "energy_J": {name: p.ann_energy_J(ann_work, network_counts(net))
                     for name, p in cfg.presets.items()},
    }
    out["schemes"] = entries
    out["failed"] = failed
    out["skipped"] = skipped
    out["model"] = model_name
    out["energy_presets"] = {name: p.source for name, p in cfg.presets.items()}
    counts = network_counts(net)
    out["network"] = {"inputs": counts.n_inputs, "synapses": counts.n_synapses,
                      "neurons": counts.n_neurons}
    return out

