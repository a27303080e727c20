"""The converted rate model: simulation of one batch and its result."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from rich.progress import Progress

from spikecast.ir.graph import Network
from spikecast.measure.counts import SpikeCounter, ann_macs, layer_macs
from spikecast.measure.latency import PredictionTrace
from spikecast.measure.result import Curve, SchemeResult
from spikecast.schemes.base import SpikingModel
from spikecast.schemes.rate.sim import (
    RateOutput,
    Signal,
    signal_kinds,
    simulate,
)

if TYPE_CHECKING:
    from spikecast.schemes.rate.recipe import RateRecipe


class RateModel(SpikingModel):
    """A normalized network simulated with IF neurons under rate coding."""

    scheme: ClassVar[str] = "rate"

    def __init__(
        self,
        network: Network,
        recipe: RateRecipe,
        *,
        ann: Network | None = None,
        scales: tuple[float, ...] | None = None,
    ) -> None:
        self.network = network
        self.recipe = recipe
        self.ann = ann
        self.scales = scales

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.recipe.seed)

    def simulate(
        self, x: torch.Tensor, steps: int | None = None, *, generator: torch.Generator | None = None
    ) -> RateOutput:
        """Simulate one batch for ``steps`` (default: the recipe's) and return everything.

        Poisson input draws from ``generator``, by default a fresh one seeded with the
        recipe's seed, so repeated calls are identical.
        """
        return simulate(
            self.network,
            x,
            self.recipe.steps if steps is None else steps,
            self.recipe.neuron,
            self.recipe.input_coding,
            generator if generator is not None else self._generator(),
            device=self.recipe.device,
        )

    def rates(self, x: torch.Tensor, steps: int | None = None) -> list[torch.Tensor]:
        """theta x (spike count / steps) of every population: the SNN's estimate of the
        normalized ANN activation max(0, a_l) / lambda_l."""
        out = self.simulate(x, steps)
        return [c * (self.recipe.threshold / out.steps) for c in out.counts]

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every population's estimate of its ANN activation, in ANN units:
        lambda_l theta count / T."""
        if self.scales is None:
            raise ValueError("this rate model has no normalization scales")
        out = self.simulate(x)
        return [c * (self.recipe.threshold / out.steps) * self.scales[s.index]
                for c, s in zip(out.counts, out.populations, strict=True)]

    def neuron_spike_counts(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Spikes of every neuron of every population, (batch, *out_shape) each."""
        return list(self.simulate(x).counts)

    def evaluate(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int = 256,
        progress: bool = False,
    ) -> SchemeResult:
        """Accuracy after every step 1..T on ``(x, y)``, spikes and synaptic events.

        Synaptic events count spikes x fan-out at every synaptic layer (and one per spike
        arriving directly at an Add/Concat population). Under constant-current input the
        layers fed by the input receive analog values, not spikes: their events are 0 and
        their cost is the dense MAC count of one pass (``extra["input_layer_macs"]``, the
        current is constant over time). Under Poisson input the first layer's events
        are input spikes x fan-out.
        """
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{x.shape[0]} inputs but {y.shape[0]} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        steps = self.recipe.steps
        counter = SpikeCounter(self.network)
        correct = torch.zeros(steps, dtype=torch.float64)
        predictions = []
        input_spikes = 0.0
        generator = self._generator()
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"rate SNN, T={steps}", total=x.shape[0])
            for start in range(0, x.shape[0], batch_size):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                out = self.simulate(xb, generator=generator)
                self._count(counter, out)
                input_spikes += float(out.input_spikes.sum())
                correct += (out.predictions == yb.unsqueeze(0)).sum(1).double()
                predictions.append(out.predictions.T)
                bar.advance(task, xb.shape[0])
        n = x.shape[0]
        per_step = (correct / max(n, 1)).tolist()
        stages = self.network.stages()
        kinds = signal_kinds(stages, self.recipe.input_coding)
        return SchemeResult(
            scheme=self.scheme,
            accuracy=per_step[-1] if n else float("nan"),
            n_samples=n,
            layers=counter.stats(),
            ann_macs=ann_macs(self.network),
            curve=Curve("time step", [float(t) for t in range(1, steps + 1)], per_step),
            trace=PredictionTrace(
                tuple(float(t) for t in range(1, steps + 1)),
                torch.cat(predictions) if predictions else torch.zeros(0, steps, dtype=torch.long),
                "time step",
            ),
            params=self.recipe.params(),
            extra={
                "steps": steps,
                "accuracy_per_step": per_step,
                "input_spikes": input_spikes / max(n, 1),
                "input_layer_macs": sum(
                    layer_macs(s.layer, s.in_shape, s.out_shape)
                    for s in stages
                    if s.synaptic and kinds[s.sources[0]] is Signal.STATIC
                ),
            },
        )

    @staticmethod
    def _count(counter: SpikeCounter, out: RateOutput) -> None:
        for stage, spikes in zip(out.populations, out.counts, strict=True):
            counter.add_spikes(stage, spikes)
        for stage in counter.stages:
            if stage.index in out.arrivals:
                counter.add_inputs(stage, out.arrivals[stage.index])
        counter.add_samples(out.predictions.shape[1])


def accuracy_at(result: SchemeResult, steps: int) -> float:
    """Accuracy after ``steps`` time steps, read from a rate result's per-step curve (one
    T=25 run gives the accuracy at T=15 too)."""
    per_step = result.extra.get("accuracy_per_step")
    if per_step is None:
        raise ValueError(f"result of scheme {result.scheme!r} has no per-step accuracy")
    if not 1 <= steps <= len(per_step):
        raise ValueError(f"steps must be in [1, {len(per_step)}], got {steps}")
    return per_step[steps - 1]
