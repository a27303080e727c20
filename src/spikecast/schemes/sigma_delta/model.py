"""The converted sigma-delta model: simulation of one batch and its result."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from rich.progress import Progress

from spikecast.ir.graph import Network
from spikecast.measure.counts import ann_macs, layer_macs
from spikecast.measure.latency import PredictionTrace
from spikecast.measure.result import Curve, LayerStats, SchemeResult
from spikecast.schemes.base import SpikingModel
from spikecast.schemes.sigma_delta.diagnostics import diagnostics
from spikecast.schemes.sigma_delta.encoding import check_input
from spikecast.schemes.sigma_delta.program import Program, build_program, population_stages
from spikecast.schemes.sigma_delta.qann import qann_predict
from spikecast.schemes.sigma_delta.record import SimRecord
from spikecast.schemes.sigma_delta.sim_event import EventSimulator, FrameState
from spikecast.schemes.sigma_delta.sim_timeslice import TimeSliceSimulator

if TYPE_CHECKING:
    from spikecast.schemes.sigma_delta.recipe import SigmaDeltaRecipe


class SimMode(str, Enum):
    """``event``: exact asynchronous kernel; ``timeslice``: batched torch slices."""

    EVENT = "event"
    TIMESLICE = "timeslice"


class SigmaDeltaModel(SpikingModel):
    """A network of sigma-delta neurons with one theta per population."""

    scheme: ClassVar[str] = "sigma-delta"

    def __init__(self, network: Network, thetas: tuple[float, ...], recipe: SigmaDeltaRecipe):
        self.network = network
        self.thetas = thetas
        self.recipe = recipe
        self.program: Program = build_program(network, thetas, recipe.coding.level)

    def simulator(self) -> EventSimulator | TimeSliceSimulator:
        r = self.recipe
        coding = {"hysteresis": r.hysteresis, "input_levels": r.input_levels}
        if r.mode is SimMode.EVENT:
            return EventSimulator(self.program, r.rule, r.input_threshold, r.delay,
                                  r.time_points, **coding)
        return TimeSliceSimulator(self.program, r.rule, r.input_threshold, r.delay,
                                  r.time_points, r.device, **coding)

    def simulate(self, x: torch.Tensor, *, batch_size: int = 256, progress: bool = False
                 ) -> SimRecord:
        """Run every frame of ``x`` through the configured simulator."""
        if len(x) == 0:
            raise ValueError("sigma-delta: no frames to simulate (x is empty)")
        check_input(x, self.recipe.input_threshold)
        sim = self.simulator()
        if isinstance(sim, TimeSliceSimulator):
            return sim.run(x, batch_size=batch_size)
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("sigma-delta SNN (event-driven)", total=len(x))
            return sim.run(x, chunk=max(batch_size, 500),
                           progress=lambda done: bar.update(task, completed=done))

    def final_state(self, frame: torch.Tensor) -> FrameState:
        """State of every node after one frame (event-driven)."""
        r = self.recipe
        return EventSimulator(self.program, r.rule, r.input_threshold, r.delay, r.time_points,
                              hysteresis=r.hysteresis,
                              input_levels=r.input_levels).final_state(frame)

    count_label: ClassVar[str] = "|net signed spikes| per neuron"

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

    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256, progress: bool = False
    ) -> SchemeResult:
        """Accuracy at every time point, spikes, synaptic updates; see module docstring."""
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{x.shape[0]} inputs but {y.shape[0]} labels")
        rec = self.simulate(x, batch_size=batch_size, progress=progress)
        res = self.result(rec, y)
        res.extra.update(diagnostics(self, x, y, rec, res.accuracy))
        return res

    def result(self, rec: SimRecord, y: torch.Tensor) -> SchemeResult:
        """Turn a simulation record of labelled frames into a :class:`SchemeResult`."""
        labels = y.cpu().numpy()
        n = len(labels)
        acc_at = (rec.pred_at == labels[:, None]).mean(0) if n else np.full(len(rec.times), np.nan)
        pops = self.program.populations()
        stages = population_stages(self.network)
        layers = [
            LayerStats(
                s.name, s.neurons, float((rec.pos[:, m] + rec.neg[:, m]).mean()),
                float(rec.updates_in[:, m].mean()), layer_macs(s.layer, s.in_shape, s.out_shape),
            )
            for s, m in zip(stages, pops, strict=True)
        ]
        neurons = sum(s.neurons for s in stages)
        mean_spikes = rec.spikes_at.mean(0) / neurons
        mean_updates = rec.updates_at.mean(0)
        acc = [float(a) for a in acc_at]
        final = float((rec.final_pred == labels).mean()) if n else float("nan")
        return SchemeResult(
            scheme=self.scheme,
            accuracy=final,
            n_samples=n,
            layers=layers,
            ann_macs=ann_macs(self.network),
            curve=Curve("time (TU)", [float(t) for t in rec.times], acc),
            params=self.recipe.params(),
            trace=PredictionTrace(tuple(float(t) for t in rec.times),
                                  torch.as_tensor(rec.pred_at), "time (TU)"),
            extra={
                "thresholds": list(self.thetas),
                "positive_spikes": float(rec.pos.sum(1).mean()),
                "negative_spikes": float(rec.neg.sum(1).mean()),
                "positive_spikes_per_layer": [float(rec.pos[:, m].mean()) for m in pops],
                "negative_spikes_per_layer": [float(rec.neg[:, m].mean()) for m in pops],
                "input_spikes": float(rec.input_spikes.mean()),
                "pool_messages": float(rec.pool_msgs.sum(1).mean()),
                "synaptic_updates": float(rec.updates.sum(1).mean()),
                "accuracy_vs_spikes": {"spikes_per_neuron": mean_spikes.tolist(),
                                       "accuracy": acc},
                "accuracy_vs_updates": {"synaptic_updates": mean_updates.tolist(),
                                        "accuracy": acc},
            },
        )
