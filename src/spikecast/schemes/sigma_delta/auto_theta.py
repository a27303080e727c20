"""``theta="auto"``: one quantization level per population, searched within an accuracy budget.

Data: the calibration inputs are split in halves; the first gives each population's scale
p_l (99.9th percentile of its positive activations on the coded input), the second is the
validation split (at most :data:`MAX_VALIDATION` samples). No labels are needed: the
reference is the float ANN's prediction on the raw validation inputs, and a candidate's
*loss* is 100 x the fraction of validation samples whose prediction differs from it, an
upper bound of the accuracy points it can lose there.

Proxy: the Q-ANN with the recipe's input coding and hysteresis
(:mod:`~spikecast.schemes.sigma_delta.qann`: where a neuron rests after its potential rose,
exactly where every neuron rests for h = 0). Cost: the synaptic updates the proxy's final
counts imply, sum over nodes m (input, populations, max-pool units) and units j of
|q_mj| F_mj, F_mj the fan-out of unit j (an SNN spends at least that; transients add more).

Search over theta_l = p_l 2^(e_l / 2): the largest common e with loss <= budget (bisection),
then greedy coarsening: each round tries e_l + 1 for every population still open and keeps
the one that saves the most updates within the budget (a population whose step breaks the
budget is closed). Confirmation: the configured simulator runs the validation split; while
its loss exceeds the budget every theta shrinks by 2^(-1/2) (at most
:data:`CONFIRM_STEPS` times). The result is logged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from spikecast.ir.graph import INPUT, Network
from spikecast.schemes.sigma_delta.encoding import InputCoding
from spikecast.schemes.sigma_delta.program import (
    EdgeKind,
    NodeKind,
    Program,
    build_program,
    population_stages,
)
from spikecast.schemes.sigma_delta.qann import quantize
from spikecast.schemes.sigma_delta.thresholds import layer_percentiles

if TYPE_CHECKING:
    from spikecast.schemes.sigma_delta.recipe import SigmaDeltaRecipe

MIN_CALIBRATION = 20
MAX_VALIDATION = 1000
CONFIRM_SAMPLES = 500
CONFIRM_STEPS = 4
PERCENTILE = 99.9
_E_RANGE = (-24, 0)

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchResult:
    """Chosen thetas, the proxy's loss and update estimate, and the simulated loss."""

    thetas: tuple[float, ...]
    proxy_loss: float
    proxy_updates: float
    snn_loss: float


class _Proxy:
    """Q-ANN predictions and update estimate on the validation split, recomputing only the
    stages from the first changed population on."""

    def __init__(self, net: Network, x: torch.Tensor, coding: InputCoding, hysteresis: float,
                 program: Program) -> None:
        self.net = net
        self.stages = net.stages()
        self.hysteresis = hysteresis
        self.counts_in = coding.counts(x).reshape(len(x), -1).float()
        self.input = self.counts_in * coding.level
        self.pops = population_stages(net)
        self.pop_position = [self.stages.index(s) for s in self.pops]
        self.outs: list[torch.Tensor] = []
        self.thetas: tuple[float, ...] = ()
        self.program = program
        self.fanout = _fanouts(program)

    def run(self, thetas: tuple[float, ...]) -> tuple[torch.Tensor, float]:
        """(predictions, estimated updates per sample) with ``thetas``."""
        start = 0
        if self.outs:
            pairs = enumerate(zip(thetas, self.thetas, strict=True))
            changed = [k for k, (a, b) in pairs if a != b]
            start = self.pop_position[changed[0]] if changed else len(self.stages)
        theta_of = {s.index: t for s, t in zip(self.pops, thetas, strict=True)}
        outs = self.outs[:start]
        values = {INPUT: self.input.reshape(len(self.input), *self.net.input_shape)}
        values |= {s.index: o for s, o in zip(self.stages[:start], outs, strict=True)}
        for s in self.stages[start:]:
            a = s.layer.forward(*(values[k] for k in s.sources))
            if s.index in theta_of and s.relu:
                a = quantize(a, theta_of[s.index], self.hysteresis)
            values[s.index] = a
            outs.append(a)
        self.outs, self.thetas = outs, thetas
        return outs[-1].reshape(len(outs[-1]), -1).argmax(1), self._updates(theta_of)

    def _updates(self, theta_of: dict[int, float]) -> float:
        p = self.program
        counts: dict[int, torch.Tensor] = {0: self.counts_in}
        position = {s.index: k for k, s in enumerate(self.stages)}
        total = float((self.counts_in.abs() * self.fanout[0]).sum())
        for m in range(1, p.n_nodes):
            stage = p.node_stage[m]
            n = len(self.counts_in)
            if p.node_kind[m] == NodeKind.POOL:
                src = p.pool_source[m]
                shaped = counts[src].reshape(n, *p.node_shape[src])
                counts[m] = stage.layer.forward(shaped).reshape(n, -1)
            else:
                out = self.outs[position[stage.index]].reshape(n, -1)
                counts[m] = torch.round(out / theta_of[stage.index])
            if self.fanout[m] is not None:
                total += float((counts[m].abs() * self.fanout[m]).sum())
        return total / len(self.counts_in)


def _fanouts(program: Program) -> list[torch.Tensor | None]:
    """Per node: the synapse count of each unit over its SYNAPSES edges (None if none)."""
    out: list[torch.Tensor | None] = []
    for m in range(program.n_nodes):
        n = int(program.node_offset[m + 1] - program.node_offset[m])
        fan = np.zeros(n)
        edges = range(int(program.edge_ptr[m]), int(program.edge_syn_end[m]))
        for e in edges:
            if program.edge_kind[e] == EdgeKind.SYNAPSES:
                fan += np.diff(program.edge_table(e)[0])
        out.append(torch.as_tensor(fan, dtype=torch.float32) if len(edges) else None)
    return out


def _loss(pred: torch.Tensor, ref: torch.Tensor) -> float:
    return 100.0 * float((pred != ref).double().mean())


def search_thresholds(
    net: Network, calib_x: torch.Tensor | None, recipe: SigmaDeltaRecipe
) -> SearchResult:
    """Per-population thetas for ``recipe`` (its coding, hysteresis, rule, mode) within
    ``recipe.budget`` points (see module docstring)."""
    if calib_x is None or len(calib_x) < MIN_CALIBRATION:
        got = 0 if calib_x is None else len(calib_x)
        raise ValueError(f"theta='auto' needs at least {MIN_CALIBRATION} calibration samples "
                         f"(training data, split into fit and validation halves), got {got}")
    coding = recipe.coding
    half = len(calib_x) // 2
    fit, val = calib_x[:half], calib_x[half:][:MAX_VALIDATION]
    scale = [p if p > 0 else 1.0 for p in layer_percentiles(
        net, fit, PERCENTILE, coding.threshold, coding.levels)]
    with torch.no_grad():
        ref = net(val.float()).reshape(len(val), -1).argmax(1)
    program = build_program(net, tuple(scale), coding.level)
    proxy = _Proxy(net, val, coding, recipe.hysteresis, program)
    budget = recipe.budget

    def thetas_of(e: list[int]) -> tuple[float, ...]:
        return tuple(p * 2.0 ** (k / 2) for p, k in zip(scale, e, strict=True))

    def evaluate(e: list[int]) -> tuple[float, float]:
        with torch.no_grad():
            pred, updates = proxy.run(thetas_of(e))
        return _loss(pred, ref), updates

    n = len(scale)
    lo, hi = _E_RANGE
    finest = evaluate([lo] * n)[0]
    if finest > budget:
        raise ValueError(
            f"theta='auto': even theta = p99.9 / {2 ** (-lo / 2):g} loses {finest:.2f} points "
            f"on the validation split, more than budget={budget}; raise the budget or "
            "input_levels"
        )
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if evaluate([mid] * n)[0] <= budget else (lo, mid)
    e = [lo] * n
    loss, cost = evaluate(e)
    open_ = set(range(n))
    while open_:
        best = None
        for k in sorted(open_):
            trial = [*e[:k], e[k] + 1, *e[k + 1:]]
            t_loss, t_cost = evaluate(trial)
            if t_loss > budget:
                open_.discard(k)
            elif t_cost < cost and (best is None or t_cost < best[2]):
                best = (trial, t_loss, t_cost)
        if best is None:
            break
        e, loss, cost = best
    thetas = thetas_of(e)
    snn_loss = _confirm(net, val[:CONFIRM_SAMPLES], ref[:CONFIRM_SAMPLES], thetas, recipe)
    steps = 0
    while snn_loss > budget and steps < CONFIRM_STEPS:
        steps += 1
        thetas = tuple(t / math.sqrt(2.0) for t in thetas)
        snn_loss = _confirm(net, val[:CONFIRM_SAMPLES], ref[:CONFIRM_SAMPLES], thetas, recipe)
    if snn_loss > budget:
        _log.warning("theta='auto': the simulated SNN still loses %.2f points on the "
                     "validation split (budget %.2f) after %d refinements", snn_loss, budget,
                     steps)
    _log.info("theta='auto' (budget %.2f points): thetas %s, Q-ANN loss %.2f, estimated "
              "%.0f updates/sample, simulated loss %.2f", budget,
              [round(t, 4) for t in thetas], loss, cost, snn_loss)
    return SearchResult(thetas, loss, cost, snn_loss)


def _confirm(net: Network, x: torch.Tensor, ref: torch.Tensor, thetas: tuple[float, ...],
             recipe: SigmaDeltaRecipe) -> float:
    """Loss of the simulated SNN with ``thetas`` against the ANN's predictions ``ref``."""
    from spikecast.schemes.sigma_delta.recipe import SigmaDeltaCalibration

    rec = recipe.build(net, SigmaDeltaCalibration(thetas)).simulate(x)
    return _loss(torch.as_tensor(rec.final_pred), ref)
