"""The converted sigma-delta model: simulation of one batch and its result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from spikecast.choice import Choice
from spikecast.ir.graph import Network
from spikecast.measure.counts import layer_macs
from spikecast.measure.result import CumulativeCounts, LayerStats, SchemeResult
from spikecast.schemes.base import Calibration, OutputTrace, SpikingModel, Summary
from spikecast.schemes.sigma_delta.diagnostics import diagnostics
from spikecast.schemes.sigma_delta.encoding import check_input
from spikecast.schemes.sigma_delta.program import Program, build_program, population_stages
from spikecast.schemes.sigma_delta.qann import qann_predict
from spikecast.schemes.sigma_delta.record import SimRecord
from spikecast.schemes.sigma_delta.sim_event import EventSimulator, FrameState
from spikecast.schemes.sigma_delta.sim_timeslice import TimeSliceSimulator

if TYPE_CHECKING:
    from spikecast.schemes.sigma_delta.recipe import SigmaDeltaRecipe


class SimMode(Choice):
    """``event``: exact asynchronous kernel; ``timeslice``: batched torch slices."""

    EVENT = "event"
    TIMESLICE = "timeslice"


@dataclass(frozen=True)
class SigmaDeltaDetails:
    """Per-sample means: the thetas, positive and negative spikes (in all and per
    population), max-pool messages and synaptic updates; the Q-ANN's and the coded-input
    ANN's accuracies and any collapse warnings (set by :meth:`SigmaDeltaModel.evaluate`)."""

    thresholds: tuple[float, ...]
    positive_spikes: float
    negative_spikes: float
    positive_spikes_per_layer: tuple[float, ...]
    negative_spikes_per_layer: tuple[float, ...]
    pool_messages: float
    synaptic_updates: float
    qann_accuracy: float | None = None
    coded_input_ann_accuracy: float | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class SigmaDeltaModel(SpikingModel):
    """A network of sigma-delta neurons with one theta per population."""

    scheme: ClassVar[str] = "sigma-delta"
    count_label: ClassVar[str] = "|net signed spikes| per neuron"
    recipe: SigmaDeltaRecipe

    def __init__(self, recipe: SigmaDeltaRecipe, ann: Network, calibration: Calibration,
                 thetas: tuple[float, ...]) -> None:
        super().__init__(recipe, ann, calibration)
        self.network = ann
        self.thetas = thetas
        self.program: Program = build_program(ann, thetas, recipe.coding.level)

    def simulator(self) -> EventSimulator | TimeSliceSimulator:
        r = self.recipe
        coding = {"hysteresis": r.hysteresis, "input_levels": r.input_levels}
        if r.mode is SimMode.EVENT:
            return EventSimulator(self.program, r.rule, r.input_threshold, r.delay,
                                  r.time_points, **coding)
        return TimeSliceSimulator(self.program, r.rule, r.input_threshold, r.delay,
                                  r.time_points, r.device, **coding)

    def simulate(self, x: torch.Tensor) -> SimRecord:
        """Run every frame of ``x`` through the configured simulator."""
        if len(x) == 0:
            raise ValueError("sigma-delta: no frames to simulate (x is empty)")
        check_input(x, self.recipe.input_threshold)
        sim = self.simulator()
        if isinstance(sim, TimeSliceSimulator):
            return sim.run(x, batch_size=len(x))
        return sim.run(x, chunk=len(x))

    def final_state(self, frame: torch.Tensor) -> FrameState:
        """State of every node after one frame (event-driven)."""
        r = self.recipe
        return EventSimulator(self.program, r.rule, r.input_threshold, r.delay, r.time_points,
                              hysteresis=r.hysteresis,
                              input_levels=r.input_levels).final_state(frame)

    def _final_counts(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Signed spike count of every neuron of every population after each frame."""
        states = [self.final_state(frame) for frame in x]
        return [torch.as_tensor(np.stack([st.count[m] for st in states]))
                for m in self.program.populations()]

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every population's settled quantized value theta x (net signed spikes): its
        estimate of the ANN activation, (batch, neurons) each."""
        return [c * theta for c, theta in zip(self._final_counts(x), self.thetas, strict=True)]

    def neuron_spike_counts(self, x: torch.Tensor) -> list[torch.Tensor]:
        """|net signed spikes| of every neuron of every population, (batch, neurons) each."""
        return [c.abs() for c in self._final_counts(x)]

    def qann_accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy of the Q-ANN with the same thetas (see ``sigma_delta.qann``)."""
        r = self.recipe
        pred = qann_predict(self.network, x, self.thetas, r.input_threshold,
                            hysteresis=r.hysteresis, input_levels=r.input_levels)
        return float((pred == y).double().mean())

    def time_points(self) -> tuple[tuple[float, ...], str]:
        sim = self.simulator()
        return tuple(float(t) for t in sim.grid + sim.hops * sim.delay), "time (TU)"

    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256, progress: bool = False
    ) -> SchemeResult:
        """The evaluate loop's result with the Q-ANN's and the coded-input ANN's accuracies
        and collapse warnings in its details (see :mod:`.diagnostics`)."""
        result = super().evaluate(x, y, batch_size=batch_size, progress=progress)
        found = diagnostics(self, x, y, result)
        return replace(result, details=replace(result.details, **found))

    def new_tally(self) -> SigmaDeltaTally:
        return SigmaDeltaTally(self)

    def simulate_batch(  # type: ignore[override]
        self, x: torch.Tensor, tally: SigmaDeltaTally
    ) -> OutputTrace:
        """One batch of frames: the output's signed counts and V_mem at every time point;
        the final values after every event has settled."""
        rec = self.simulate(x)
        tally.records.append(rec)
        return OutputTrace(torch.as_tensor(rec.out_q_at), torch.as_tensor(rec.out_v_at),
                           torch.as_tensor(rec.out_q), torch.as_tensor(rec.out_v))


class SigmaDeltaTally:
    """The simulation records of an evaluation's batches (see module docstring of
    :mod:`spikecast.schemes.sigma_delta.recipe` for the counting conventions)."""

    def __init__(self, model: SigmaDeltaModel) -> None:
        self.model = model
        self.records: list[SimRecord] = []

    def summary(self, n_samples: int) -> Summary:
        rec = SimRecord.concat(self.records)
        model = self.model
        pops = model.program.populations()
        stages = population_stages(model.network)
        layers = tuple(
            LayerStats(
                s.name, s.neurons, float((rec.pos[:, m] + rec.neg[:, m]).mean()),
                float(rec.updates_in[:, m].mean()), layer_macs(s.layer, s.in_shape, s.out_shape),
            )
            for s, m in zip(stages, pops, strict=True)
        )
        neurons = sum(s.neurons for s in stages)
        details = SigmaDeltaDetails(
            thresholds=model.thetas,
            positive_spikes=float(rec.pos.sum(1).mean()),
            negative_spikes=float(rec.neg.sum(1).mean()),
            positive_spikes_per_layer=tuple(float(rec.pos[:, m].mean()) for m in pops),
            negative_spikes_per_layer=tuple(float(rec.neg[:, m].mean()) for m in pops),
            pool_messages=float(rec.pool_msgs.sum(1).mean()),
            synaptic_updates=float(rec.updates.sum(1).mean()),
        )
        cumulative = CumulativeCounts(
            tuple((rec.spikes_at.mean(0) / neurons).tolist()),
            tuple(rec.updates_at.mean(0).tolist()),
        )
        return Summary(layers=layers, input_spikes=float(rec.input_spikes.mean()),
                       cumulative=cumulative, details=details)
