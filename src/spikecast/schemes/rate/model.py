"""The converted rate model: simulation of one batch and its result."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

from spikecast.ir.graph import Network
from spikecast.ir.normalize import Normalized
from spikecast.measure.counts import SpikeCounter, layer_macs
from spikecast.measure.result import SchemeResult
from spikecast.schemes.base import Calibration, OutputTrace, SpikingModel, Summary
from spikecast.schemes.rate.sim import (
    RateOutput,
    Signal,
    signal_kinds,
    simulate,
)

if TYPE_CHECKING:
    from spikecast.schemes.rate.recipe import RateRecipe


class RateModel(SpikingModel):
    """A normalized network simulated with IF neurons under rate coding.

    ``network`` is the normalized network (``normalized.scales`` the lambda_l)."""

    scheme: ClassVar[str] = "rate"
    recipe: RateRecipe

    def __init__(self, recipe: RateRecipe, ann: Network, calibration: Calibration,
                 normalized: Normalized) -> None:
        super().__init__(recipe, ann, calibration)
        self.network = normalized.network
        self.scales = normalized.scales

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
        out = self.simulate(x)
        return [c * (self.recipe.threshold / out.steps) * self.scales[s.index]
                for c, s in zip(out.counts, out.populations, strict=True)]

    def neuron_spike_counts(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Spikes of every neuron of every population, (batch, *out_shape) each."""
        return list(self.simulate(x).counts)

    def time_points(self) -> tuple[tuple[float, ...], str]:
        return tuple(float(t) for t in range(1, self.recipe.steps + 1)), "time step"

    def new_tally(self) -> RateTally:
        return RateTally(self.network, self.recipe, self._generator())

    def simulate_batch(  # type: ignore[override]
        self, x: torch.Tensor, tally: RateTally
    ) -> OutputTrace:
        """One batch; Poisson input continues the evaluation's seeded generator.

        Synaptic events count spikes x fan-out at every synaptic layer (and one per spike
        arriving directly at an Add/Concat population). Under constant-current input the
        layers fed by the input receive analog values, not spikes: their events are 0 and
        their cost is the dense MAC count of one pass (``analog_input_macs``: the current
        is constant over time). Under Poisson input the first layer's events are input
        spikes x fan-out. The output potential is the accumulated charge theta n + v.
        """
        out = self.simulate(x, generator=tally.generator)
        tally.add(out)
        counts = out.output_counts.transpose(0, 1)
        potential = counts * self.recipe.threshold + out.output_v.transpose(0, 1)
        return OutputTrace(counts, potential, counts[:, -1], potential[:, -1])


class RateTally:
    """Spikes and synaptic events per stage and input spikes over an evaluation."""

    def __init__(self, network: Network, recipe: RateRecipe, generator: torch.Generator):
        self.network = network
        self.recipe = recipe
        self.generator = generator
        self.counter = SpikeCounter(network)
        self.input_spikes = 0.0

    def add(self, out: RateOutput) -> None:
        for stage, spikes in zip(out.populations, out.counts, strict=True):
            self.counter.add_spikes(stage, spikes)
        for stage in self.counter.stages:
            if stage.index in out.arrivals:
                self.counter.add_inputs(stage, out.arrivals[stage.index])
        self.counter.add_samples(out.predictions.shape[1])
        self.input_spikes += float(out.input_spikes.sum())

    def summary(self, n_samples: int) -> Summary:
        stages = self.network.stages()
        kinds = signal_kinds(stages, self.recipe.input_coding)
        return Summary(
            layers=tuple(self.counter.stats()),
            time_steps=self.recipe.steps,
            analog_input_macs=sum(
                layer_macs(s.layer, s.in_shape, s.out_shape)
                for s in stages
                if s.synaptic and kinds[s.sources[0]] is Signal.STATIC
            ),
            input_spikes=self.input_spikes / n_samples,
        )


def accuracy_at(result: SchemeResult, steps: int) -> float:
    """Accuracy after ``steps`` time steps, read from a rate result's per-step curve (one
    T=25 run gives the accuracy at T=15 too)."""
    if result.time_steps is None:
        raise ValueError(f"result of scheme {result.scheme!r} has no time steps")
    per_step = result.curve.accuracy
    if not 1 <= steps <= len(per_step):
        raise ValueError(f"steps must be in [1, {len(per_step)}], got {steps}")
    return per_step[steps - 1]
