"""Quantization levels theta, one per neuron population (stage with ``population=True``).

* a shared float: the paper's single threshold for every neuron;
* a sequence of floats: one per population, in layer order;
* ``"auto"``: searched per population within an accuracy budget
  (:mod:`~spikecast.schemes.sigma_delta.auto_theta`);
* :class:`Calibrated`: theta_l = fraction x the ``percentile``-th percentile of population
  l's positive activations on calibration data fed through the coded input (for an output
  layer without ReLU, of |pre-activation|). A layer with no positive activation keeps
  theta = ``fallback``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from spikecast.ir.graph import Network
from spikecast.schemes.sigma_delta.encoding import InputCoding
from spikecast.schemes.sigma_delta.neuron import check_theta
from spikecast.schemes.sigma_delta.program import population_stages


@dataclass(frozen=True)
class Calibrated:
    """theta_l = fraction * percentile_p(positive activations of layer l)."""

    fraction: float = 0.1
    percentile: float = 99.9
    fallback: float = 1.0

    def __post_init__(self) -> None:
        check_theta(self.fraction, "threshold fraction")
        check_theta(self.fallback, "fallback threshold")
        if not 0 < self.percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile}")


AUTO = "auto"  # searched within an accuracy budget, see ``auto_theta``
ThresholdSpec = float | Sequence[float] | Calibrated | str


def describe(spec: ThresholdSpec) -> dict[str, float] | float | list[float] | str:
    """A JSON-friendly form of ``spec`` that :func:`parse_spec` reads back."""
    if spec == AUTO:
        return AUTO
    if isinstance(spec, Calibrated):
        return {"fraction": spec.fraction, "percentile": spec.percentile, "fallback": spec.fallback}
    if isinstance(spec, (int, float)):
        return float(spec)
    return [float(t) for t in spec]


def label(spec: ThresholdSpec) -> str:
    """A short human label: ``1.0``, ``[0.5, 1.0]`` or ``calibrated(0.15, p99.9)``."""
    if isinstance(spec, Calibrated):
        return f"calibrated({spec.fraction}, p{spec.percentile})"
    return str(describe(spec))


def parse_spec(spec: ThresholdSpec | dict[str, float]) -> ThresholdSpec:
    """Accept a float, a sequence of floats, a :class:`Calibrated`, its dict form
    ``{"fraction": f, "percentile": p, "fallback": t}`` (from JSON or ``--param``), or
    ``"auto"``."""
    if isinstance(spec, str):
        if spec.strip().lower() != AUTO:
            raise ValueError(f"theta {spec!r}: a string theta must be {AUTO!r}; otherwise give "
                             "a number, one per population, or {'fraction': f, ...}")
        return AUTO
    if isinstance(spec, dict):
        unknown = set(spec) - {"fraction", "percentile", "fallback"}
        if unknown:
            raise ValueError(
                f"calibrated theta takes fraction, percentile, fallback; got {sorted(unknown)}"
            )
        return Calibrated(**{k: float(v) for k, v in spec.items()})
    return spec


def layer_percentiles(
    net: Network, calib_x: torch.Tensor, percentile: float, input_threshold: float = 0.2,
    input_levels: int = 1,
) -> list[float]:
    """Per population: the percentile of its positive activations (0.0 if none)."""
    coded = InputCoding(input_levels, input_threshold).coded(calib_x, torch.float32)
    with torch.no_grad():
        acts = net.activations(coded)
    out = []
    for stage in population_stages(net):
        a = acts[stage.index]
        a = a.clamp(min=0) if stage.relu else a.abs()
        pos = a[a > 0].double()
        if pos.numel() > 4_000_000:
            pos = pos[:: -(-pos.numel() // 4_000_000)]
        out.append(float(torch.quantile(pos, percentile / 100.0)) if pos.numel() else 0.0)
    return out


def resolve_thresholds(
    net: Network,
    spec: ThresholdSpec,
    calib_x: torch.Tensor | None = None,
    input_threshold: float = 0.2,
    input_levels: int = 1,
) -> tuple[float, ...]:
    """One theta per population of ``net``; ValueError for theta <= 0 or a wrong count."""
    stages = population_stages(net)
    if spec == AUTO:
        raise ValueError("theta='auto' is searched by SigmaDeltaRecipe.normalize (auto_theta)")
    if isinstance(spec, Calibrated):
        if calib_x is None:
            raise ValueError("calibrated thresholds need calibration data (calib_x)")
        pct = layer_percentiles(net, calib_x, spec.percentile, input_threshold, input_levels)
        return tuple(spec.fraction * p if p > 0 else spec.fallback for p in pct)
    if isinstance(spec, (int, float)):
        return tuple(check_theta(spec) for _ in stages)
    if len(spec) != len(stages):
        names = ", ".join(s.name for s in stages)
        raise ValueError(f"{len(spec)} thresholds given for {len(stages)} layers ({names})")
    return tuple(
        check_theta(t, f"theta of layer {s.name!r}") for t, s in zip(spec, stages, strict=True)
    )
