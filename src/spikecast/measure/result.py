"""The typed record every scheme's evaluation returns, and the ``results.json`` contract.

Every count is a per-sample mean. The accuracy curve is computed from the prediction trace
(``trace.predictions[b, k]`` = sample b's readout at time point k), never stored twice:

    curve_k = mean_b [trace.predictions[b, k] == labels[b]]
    accuracy = mean_b [predictions[b] == labels[b]]   (the final readout)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from spikecast.io.atomic import write_json


@dataclass(frozen=True)
class LayerStats:
    """Per-sample activity of one synaptic layer or neuron population."""

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


@dataclass(frozen=True)
class Curve:
    """Accuracy after each point of a sweep (time step, time, spikes or operations)."""

    x_label: str
    x: list[float]
    accuracy: list[float]


@dataclass(frozen=True, eq=False)
class PredictionTrace:
    """Predicted class of every sample at every time point: ``predictions`` (B, K) at
    ``times`` (K, increasing), in ``unit``."""

    times: tuple[float, ...]
    predictions: torch.Tensor
    unit: str

    def __post_init__(self) -> None:
        if self.predictions.ndim != 2 or self.predictions.shape[1] != len(self.times):
            raise ValueError(
                f"predictions must be (samples, {len(self.times)} time points), got "
                f"{tuple(self.predictions.shape)}"
            )
        if not self.times or any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise ValueError("times must be non-empty and strictly increasing")


@dataclass(frozen=True)
class CumulativeCounts:
    """Exact per-sample means up to each time point of the trace: spikes per neuron and
    synaptic updates (schemes without them get linear interpolations in the report)."""

    spikes_per_neuron: tuple[float, ...]
    synaptic_updates: tuple[float, ...]


class SchemeDetails(Protocol):
    """Scheme-specific typed figures of a result (e.g. the SSNN circuit's power)."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True, eq=False)
class SchemeResult:
    """What one scheme achieved on labelled samples.

    ``predictions`` is the final readout under ``readout`` (:mod:`spikecast.measure.readout`),
    ``trace`` the readout at every time point; ``accuracy_spike_count`` the accuracy by spike
    count alone with ties counted wrong, ``silent_fraction`` / ``tied_fraction`` the samples
    whose output neurons are all at 0 / share the most spikes; ``time_steps`` the clock steps
    of a clocked scheme (None: event-driven); ``analog_input_macs`` the dense MACs per sample
    of the layers fed the analog input (0 when the input arrives as spikes);
    ``input_spikes`` the input spikes per sample.
    """

    scheme: str
    labels: torch.Tensor
    predictions: torch.Tensor
    trace: PredictionTrace
    layers: tuple[LayerStats, ...]
    ann_macs: int
    params: dict[str, Any] = field(default_factory=dict)
    readout: str = "count-membrane"
    accuracy_spike_count: float | None = None
    silent_fraction: float | None = None
    tied_fraction: float | None = None
    time_steps: int | None = None
    analog_input_macs: int = 0
    input_spikes: float = 0.0
    cumulative: CumulativeCounts | None = None
    details: SchemeDetails | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.predictions.shape != (n,) or self.trace.predictions.shape[0] != n:
            raise ValueError(
                f"{n} labels, predictions {tuple(self.predictions.shape)}, trace "
                f"{tuple(self.trace.predictions.shape)}"
            )

    @property
    def n_samples(self) -> int:
        return len(self.labels)

    @property
    def accuracy(self) -> float:
        return accuracy(self.predictions, self.labels)

    @property
    def curve(self) -> Curve:
        """Accuracy at every time point of the trace."""
        hits = (self.trace.predictions == self.labels.unsqueeze(1)).double()
        return Curve(self.trace.unit, list(self.trace.times), hits.mean(0).tolist())

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
            "readout": self.readout,
            "accuracy_spike_count": self.accuracy_spike_count,
            "silent_fraction": self.silent_fraction,
            "tied_fraction": self.tied_fraction,
            "n_samples": self.n_samples,
            "spikes_per_neuron": self.spikes_per_neuron,
            "spikes": self.spikes,
            "neurons": self.neurons,
            "synaptic_events": self.synaptic_events,
            "ann_macs": self.ann_macs,
            "time_steps": self.time_steps,
            "analog_input_macs": self.analog_input_macs,
            "input_spikes": self.input_spikes,
            "layers": [layer.to_dict() for layer in self.layers],
            "curve": asdict(self.curve),
            "cumulative": None if self.cumulative is None else asdict(self.cumulative),
            "params": self.params,
            "details": None if self.details is None else self.details.to_dict(),
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
