"""Accuracy of a converted SSNN versus one circuit parameter (JSON + PNG per sweep).

- ``window``: observation window (s); the current calibration is unchanged.
- ``spike_width``: pulse width (s) at the paper's fixed maximum rate (t_ref = 1/5.3 MHz - w);
  the currents are recalibrated, so the next layer's mean drive is kept and only the pulse
  timing changes.
- ``current_scale``: factor on the calibrated per-layer synapse currents i_unit.
- ``mismatch_pct``: sigma (%) of synapse-current and threshold variation; each value is run
  for ``mc_seeds`` mismatch draws (Monte Carlo) and reported as mean and standard deviation.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikecast.io.atomic import atomic_write, write_json
from spikecast.ir.graph import Network
from spikecast.schemes import convert
from spikecast.schemes.ssnn import SSNNRecipe
from spikecast.schemes.ssnn.circuit import parse_enum


class SweepParam(str, Enum):
    """The circuit parameters ``ssnn-sweep`` can vary."""

    WINDOW = "window"
    SPIKE_WIDTH = "spike_width"
    CURRENT_SCALE = "current_scale"
    MISMATCH = "mismatch_pct"


@dataclass
class SweepResult:
    """Accuracy (mean and std over Monte-Carlo draws) and spikes per neuron per value."""

    param: str
    values: list[float]
    accuracy: list[float]
    accuracy_std: list[float]
    spikes_per_neuron: list[float]
    n_samples: int
    mc_seeds: int
    base_params: dict[str, Any]

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``ssnn_sweep_<param>.json`` and ``.png`` into ``out_dir``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(out_dir)
        json_path = write_json(out / f"ssnn_sweep_{self.param}.json", asdict(self))
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.errorbar(self.values, [100 * a for a in self.accuracy],
                    yerr=[100 * s for s in self.accuracy_std], marker="o", capsize=3)
        ax.set_xlabel(self.param)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"SSNN accuracy vs {self.param} ({self.n_samples} samples)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        try:
            png_path = atomic_write(out / f"ssnn_sweep_{self.param}.png",
                                    lambda tmp: fig.savefig(tmp, dpi=120))
        finally:
            plt.close(fig)
        return json_path, png_path


def _recipe(param: SweepParam, value: float, base: dict[str, Any],
            calibrated: tuple[float, ...], seed: int) -> SSNNRecipe:
    if param is SweepParam.WINDOW:
        return SSNNRecipe(**base | {"window": value, "i_unit": calibrated})
    if param is SweepParam.SPIKE_WIDTH:
        return SSNNRecipe(**base | {"spike_width": value, "t_ref": None})
    if param is SweepParam.CURRENT_SCALE:
        return SSNNRecipe(**base | {"i_unit": tuple(u * value for u in calibrated)})
    return SSNNRecipe(**base | {"mismatch_pct": value, "mismatch_seed": seed, "i_unit": calibrated})


def run_sweep(
    ann: nn.Module | Network,
    calib_x: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    param: SweepParam | str,
    values: list[float],
    *,
    base_params: dict[str, Any] | None = None,
    mc_seeds: int = 5,
) -> SweepResult:
    """Convert ``ann`` once per value (and per Monte-Carlo seed for ``mismatch_pct``)."""
    param = parse_enum(SweepParam, param, "sweep parameter")
    if not values:
        raise ValueError("a sweep needs at least one value")
    if mc_seeds < 1:
        raise ValueError(f"mc_seeds must be >= 1, got {mc_seeds}")
    base = dict(base_params or {})
    calibrated = convert(ann, SSNNRecipe(**base), calib_x).circuit.i_unit
    seeds = range(mc_seeds) if param is SweepParam.MISMATCH else range(1)
    accs, stds, spn = [], [], []
    for value in values:
        runs = [
            convert(ann, _recipe(param, value, base, calibrated, s), calib_x).evaluate(x, y)
            for s in seeds
        ]
        accs.append(statistics.fmean(r.accuracy for r in runs))
        stds.append(statistics.pstdev(r.accuracy for r in runs))
        spn.append(statistics.fmean(r.spikes_per_neuron for r in runs))
    return SweepResult(param.value, list(values), accs, stds, spn, len(x), len(seeds), base)
