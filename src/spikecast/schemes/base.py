"""What every coding scheme implements, the converter's fixed phases and the one evaluate loop.

A scheme is a :class:`Recipe` (its parameters) that

1. ``calibrate(net, calib_x) -> Calibration``: every value the conversion takes from data
   (normalization scales, thresholds, currents), as a frozen record saved with the network;
2. ``build(net, calibration) -> SpikingModel``: a pure function of the captured network and
   that record (the same inputs always give the same model).

A :class:`SpikingModel` implements only how one batch is simulated
(:meth:`SpikingModel.simulate_batch`, counting into a scheme-specific :class:`Tally` and
returning the output population's counts and potentials as an :class:`OutputTrace`);
:meth:`SpikingModel.evaluate` does the rest for every scheme: input checks, batching,
progress, the readout (:mod:`spikecast.measure.readout`, the recipe's ``readout`` field),
the prediction trace and the typed :class:`~spikecast.measure.result.SchemeResult`.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from rich.progress import Progress

from spikecast.checks import require_labels, require_unit_interval
from spikecast.ir.graph import Network
from spikecast.measure.counts import ann_macs
from spikecast.measure.readout import Readout, decide, silent_and_tied
from spikecast.measure.result import (
    CumulativeCounts,
    LayerStats,
    PredictionTrace,
    SchemeDetails,
    SchemeResult,
)

C = TypeVar("C", bound="Calibration")


class UnsupportedGraph(ValueError):
    """The network is valid but outside what a scheme can build (e.g. a branched graph
    for a chain-only circuit): reports list the scheme as *skipped*, not *failed*."""


@dataclass(frozen=True)
class Calibration:
    """Base of every scheme's calibration record: frozen, JSON-able fields (floats and
    tuples of floats), written into the ``.spikecast`` file."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls: type[C], data: Any) -> C:
        """Rebuild from :meth:`to_dict`; a missing, unknown or ill-typed field is a
        ``ValueError`` naming it."""
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict) or set(data) != set(names):
            raise ValueError(f"{cls.__name__} needs exactly the fields {names}, got {data!r}")
        return cls(**{k: _frozen(v) for k, v in data.items()})


def require_positive(values: tuple[float, ...], what: str) -> None:
    """``ValueError`` naming ``what`` unless ``values`` is non-empty, finite and > 0."""
    if not values or not all(isinstance(v, (int, float)) and 0 < v < math.inf
                             for v in values):
        raise ValueError(f"{what} must be finite numbers > 0, got {list(values)}")


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, (list, tuple)) else value


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


@dataclass(frozen=True, eq=False)
class OutputTrace:
    """The output neurons of one batch: spike counts and potentials at every time point
    (B, K, C) and after the run (B, C) (the potential the readout uses, see
    :mod:`spikecast.measure.readout`)."""

    counts: torch.Tensor
    potential: torch.Tensor
    final_counts: torch.Tensor
    final_potential: torch.Tensor


@dataclass(frozen=True)
class Summary:
    """What a finished :class:`Tally` reports (per-sample means), besides the trace."""

    layers: tuple[LayerStats, ...]
    time_steps: int | None = None
    analog_input_macs: int = 0
    input_spikes: float = 0.0
    cumulative: CumulativeCounts | None = None
    details: SchemeDetails | None = None


class Tally(Protocol):
    """A scheme's counters for one evaluation; ``summary(n)`` turns them into means."""

    def summary(self, n_samples: int) -> Summary: ...


class SpikingModel(ABC):
    """A converted network: ``ann`` (the captured network), the ``recipe`` and the
    ``calibration`` it was built from; ``evaluate`` measures it on labelled data."""

    scheme: ClassVar[str]

    def __init__(self, recipe: Recipe, ann: Network, calibration: Calibration) -> None:
        self.recipe = recipe
        self.ann = ann
        self.calibration = calibration

    count_label: ClassVar[str] = "spikes per neuron"

    @abstractmethod
    def neuron_spike_counts(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Spikes of every neuron of every population on ``x``, (batch, *shape) each, in
        network order (what ``count_label`` says they are)."""

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor] | None:
        """Every population's estimate of its ANN activation in ANN units, or None when
        the scheme's outputs are known only up to a scale (the default)."""
        return None

    @abstractmethod
    def time_points(self) -> tuple[tuple[float, ...], str]:
        """The times at which the readout is traced, and their unit."""

    @abstractmethod
    def new_tally(self) -> Tally:
        """Fresh counters for one evaluation."""

    @abstractmethod
    def simulate_batch(self, x: torch.Tensor, tally: Tally) -> OutputTrace:
        """Simulate the batch ``x``, add its counts to ``tally`` and return the output
        population's counts and potentials."""

    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256, progress: bool = False
    ) -> SchemeResult:
        """Simulate every sample of ``x`` in batches and compare the readout with ``y``."""
        require_labels(y, len(x), self.ann.n_classes)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        require_unit_interval(x)
        times, unit = self.time_points()
        readout = Readout(self.recipe.readout)
        tally = self.new_tally()
        traces, finals, counts = [], [], []
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"{self.scheme} SNN", total=len(x))
            for start in range(0, len(x), batch_size):
                xb = x[start : start + batch_size]
                out = self.simulate_batch(xb, tally)
                traces.append(decide(out.counts, out.potential, readout).cpu())
                finals.append(decide(out.final_counts, out.final_potential, readout).cpu())
                counts.append(out.final_counts.cpu())
                bar.advance(task, len(xb))
        summary = tally.summary(len(x))
        labels = y.cpu().long()
        final_counts = torch.cat(counts)
        silent, tied = silent_and_tied(final_counts)
        by_count = decide(final_counts, final_counts, Readout.SPIKE_COUNT)
        return SchemeResult(
            scheme=self.scheme,
            labels=labels,
            predictions=torch.cat(finals),
            trace=PredictionTrace(times, torch.cat(traces), unit),
            readout=readout.value,
            accuracy_spike_count=float((by_count == labels).double().mean()),
            silent_fraction=float(silent.double().mean()),
            tied_fraction=float(tied.double().mean()),
            layers=summary.layers,
            ann_macs=ann_macs(self.ann),
            params=self.recipe.params(),
            time_steps=summary.time_steps,
            analog_input_macs=summary.analog_input_macs,
            input_spikes=summary.input_spikes,
            cumulative=summary.cumulative,
            details=summary.details,
        )

    def save(self, path: str | Path, info: dict[str, Any] | None = None) -> Path:
        """Write the network, scheme, parameters and calibration to one ``.spikecast`` file."""
        from spikecast.io.snnfile import ConvertedFile, save_converted

        conv = ConvertedFile(self.scheme, self.recipe.params(), self.ann,
                             self.calibration.to_dict(), info or {})
        return save_converted(path, conv)


class Recipe(ABC):
    """A coding scheme's parameters and its two conversion phases (see module docstring).

    Recipes are frozen dataclasses with at least a ``readout`` field (how the evaluate
    loop reads the class, :mod:`spikecast.measure.readout`); enum fields accept their
    string values."""

    readout: Readout
    name: ClassVar[str]
    calibration_type: ClassVar[type[Calibration]]
    unrecorded_params: ClassVar[dict[str, Any]] = {}  # what files without a (newer) key meant

    @abstractmethod
    def calibrate(self, net: Network, calib_x: torch.Tensor | None) -> Calibration:
        """Every data-dependent value of the conversion of ``net``."""

    @abstractmethod
    def build(self, net: Network, calibration: Calibration) -> SpikingModel:
        """The spiking model of ``net`` under ``calibration`` (pure)."""

    @abstractmethod
    def legacy_calibration(
        self, net: Network, scales: tuple[float, ...], params: dict[str, Any]
    ) -> Calibration:
        """The calibration of a version-1/2 file, which stored normalization scales."""

    def params(self) -> dict[str, Any]:
        """The recipe's parameters (enums as their values), for results and files."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}
