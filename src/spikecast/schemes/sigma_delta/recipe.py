"""Sigma-delta conversion (Yousefzadeh et al., paper 004): hysteresis-quantized neurons that
communicate their quantized ReLU output with signed spikes of value +-theta, fed by a
1-bit intensity-to-delay input, simulated exactly event by event.

No weight normalization: the ANN's weights and biases are used as they are and the scale
is set by the quantization level theta_l of each population (``Normalized.scales[i]`` is
the theta of layer i's output, carried from a layer's first source through every other
layer; 1.0 for the input). Networks may be DAGs (Add, Concat): see
:mod:`spikecast.schemes.sigma_delta.program` for how layers between populations are composed.

Counting conventions (per frame): neurons = the populations (stages followed by a ReLU, and
the output; max-pool units are not neurons, their +-theta messages are
``extra["pool_messages"]``); spikes per neuron = (positive + negative spikes of those
neurons) / neurons; synaptic updates = every spike, input spike and pool message x its
composed fan-out, reported per population as the updates delivered into it; ANN MACs are exact
(:func:`spikecast.measure.counts.ann_macs`); ``extra["ann_macs_paper_formula"]`` is the paper's
footnote formula, which leaves out the input channels of each convolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, ClassVar

import numpy as np
import torch
from rich.progress import Progress

from spikecast.ir.graph import INPUT, Conv2d, Linear, Network
from spikecast.ir.normalize import Normalized
from spikecast.measure.counts import ann_macs, layer_macs
from spikecast.measure.latency import PredictionTrace
from spikecast.measure.result import Curve, LayerStats, SchemeResult
from spikecast.schemes.base import Recipe, SpikingModel
from spikecast.schemes.sigma_delta.encoding import check_input
from spikecast.schemes.sigma_delta.neuron import FiringRule, check_theta
from spikecast.schemes.sigma_delta.program import Program, build_program, population_stages
from spikecast.schemes.sigma_delta.qann import qann_predict
from spikecast.schemes.sigma_delta.record import SimRecord
from spikecast.schemes.sigma_delta.sim_event import EventSimulator, FrameState, check_delay
from spikecast.schemes.sigma_delta.sim_timeslice import TimeSliceSimulator
from spikecast.schemes.sigma_delta.thresholds import (
    Calibrated,
    ThresholdSpec,
    describe,
    parse_spec,
    resolve_thresholds,
)


class SimMode(str, Enum):
    """``event``: exact asynchronous kernel; ``timeslice``: batched torch slices."""

    EVENT = "event"
    TIMESLICE = "timeslice"


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
class SigmaDeltaRecipe(Recipe):
    """Sigma-delta scheme. ``theta``: a shared quantization level, one per population, or
    :class:`Calibrated`; ``rule``: 'exact' or 'paper'; ``mode``: 'event' or 'timeslice';
    ``input_threshold``: pixels above it spike once at 1 - p; ``delay``: synaptic delay (TU);
    ``time_points``: how many points of the accuracy-vs-time curve (0 .. 1 - threshold)."""

    name: ClassVar[str] = "sigma-delta"

    theta: ThresholdSpec = 1.0
    rule: FiringRule = FiringRule.EXACT
    mode: SimMode = SimMode.EVENT
    input_threshold: float = 0.2
    delay: float = 0.0
    time_points: int = 81
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", FiringRule(self.rule))
        try:
            object.__setattr__(self, "mode", SimMode(self.mode))
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in SimMode)
            raise ValueError(f"unknown mode {self.mode!r}; allowed: {allowed}") from None
        object.__setattr__(self, "theta", parse_spec(self.theta))
        if isinstance(self.theta, (int, float)):
            object.__setattr__(self, "theta", check_theta(self.theta))
        elif not isinstance(self.theta, Calibrated):
            thetas = tuple(check_theta(t, f"theta[{i}]") for i, t in enumerate(self.theta))
            object.__setattr__(self, "theta", thetas)
        if not 0.0 <= self.input_threshold < 1.0:
            raise ValueError(f"input_threshold must be in [0, 1), got {self.input_threshold}")
        check_delay(self.delay)
        if self.time_points < 2:
            raise ValueError(f"time_points must be >= 2, got {self.time_points}")

    def params(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["theta"] = describe(self.theta)
        return {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}

    def normalize(self, net: Network, calib_x: torch.Tensor | None) -> Normalized:
        """Keep the weights; scales = theta of every layer's output (see module docstring)."""
        thetas = resolve_thresholds(net, self.theta, calib_x, self.input_threshold)
        by_index = {s.index: t for s, t in zip(population_stages(net), thetas, strict=True)}
        scales: list[float] = []
        for i, src in enumerate(net.sources):
            scales.append(by_index.get(i, 1.0 if src[0] == INPUT else scales[src[0]]))
        return Normalized(net, tuple(scales))

    def replace(self, normalized: Normalized, ann: Network) -> SigmaDeltaModel:
        net = normalized.network
        thetas = tuple(normalized.scales[s.index] for s in population_stages(net))
        return SigmaDeltaModel(net, thetas, self)


class SigmaDeltaModel(SpikingModel):
    """A network of sigma-delta neurons with one theta per population."""

    scheme: ClassVar[str] = "sigma-delta"

    def __init__(self, network: Network, thetas: tuple[float, ...], recipe: SigmaDeltaRecipe):
        self.network = network
        self.thetas = thetas
        self.recipe = recipe
        self.program: Program = build_program(network, thetas)

    def simulator(self) -> EventSimulator | TimeSliceSimulator:
        r = self.recipe
        if r.mode is SimMode.EVENT:
            return EventSimulator(self.program, r.rule, r.input_threshold, r.delay,
                                  r.time_points)
        return TimeSliceSimulator(self.program, r.rule, r.input_threshold, r.delay,
                                  r.time_points, r.device)

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
        return EventSimulator(self.program, r.rule, r.input_threshold, r.delay,
                              r.time_points).final_state(frame)

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
        pred = qann_predict(self.network, x, self.thetas, self.recipe.input_threshold)
        return float((pred == y).double().mean())

    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256, progress: bool = False
    ) -> SchemeResult:
        """Accuracy at every time point, spikes, synaptic updates; see module docstring."""
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{x.shape[0]} inputs but {y.shape[0]} labels")
        rec = self.simulate(x, batch_size=batch_size, progress=progress)
        return self.result(rec, y)

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
                "ann_macs_paper_formula": paper_formula_macs(self.network),
                "accuracy_vs_spikes": {"spikes_per_neuron": mean_spikes.tolist(),
                                       "accuracy": acc},
                "accuracy_vs_updates": {"synaptic_updates": mean_updates.tolist(),
                                        "accuracy": acc},
            },
        )
