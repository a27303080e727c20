"""The results record every scheme returns, and the ``results.json`` contract."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from spikecast.io.atomic import write_json

if TYPE_CHECKING:
    from spikecast.measure.latency import PredictionTrace


@dataclass
class LayerStats:
    """Per-sample activity of one neuron population (or the input encoder)."""

    name: str
    neurons: int
    spikes: float
    synaptic_events: float
    macs: int

    @property
    def spikes_per_neuron(self) -> float:
        return self.spikes / self.neurons if self.neurons else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"spikes_per_neuron": self.spikes_per_neuron}




@dataclass
class Curve:
    """Accuracy after each point of a sweep (time step, time, spikes or operations)."""

    x_label: str
    x: list[float]
    accuracy: list[float]


@dataclass
class SchemeResult:
    """What one scheme achieved on a set of samples; every count is a per-sample mean.

    ``trace`` holds every sample's readout at every point of ``curve`` (kept in memory for
    the latency report, not written to results files).
    """

    scheme: str
    accuracy: float
    n_samples: int
    layers: list[LayerStats]
    ann_macs: int
    curve: Curve | None = None
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    trace: PredictionTrace | None = field(default=None, repr=False, compare=False)

    @property
    def neurons(self) -> int:
        return sum(layer.neurons for layer in self.layers)

    @property
    def spikes(self) -> float:
        return sum(layer.spikes for layer in self.layers)

    @property
    def spikes_per_neuron(self) -> float:
        return self.spikes / self.neurons if self.neurons else 0.0

    @property
    def synaptic_events(self) -> float:
        return sum(layer.synaptic_events for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "n_samples": self.n_samples,
            "spikes_per_neuron": self.spikes_per_neuron,
            "spikes": self.spikes,
            "neurons": self.neurons,
            "synaptic_events": self.synaptic_events,
            "ann_macs": self.ann_macs,
            "layers": [layer.to_dict() for layer in self.layers],
            "curve": None if self.curve is None else asdict(self.curve),
            "params": self.params,
            **self.extra,
        }


@dataclass
class RunResults:
    """The ``results.json`` contract: dataset, ANN accuracy and one entry per scheme."""

    dataset: str
    ann_accuracy: float
    ann_macs: int
    n_samples: int
    schemes: dict[str, SchemeResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "n_samples": self.n_samples,
            "ann": {"accuracy": self.ann_accuracy, "macs": self.ann_macs},
            "schemes": {k: v.to_dict() for k, v in self.schemes.items()},
        }

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``pred == labels``."""
    if pred.shape != labels.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} vs labels {tuple(labels.shape)}")
    return float((pred == labels).double().mean()) if labels.numel() else float("nan")
