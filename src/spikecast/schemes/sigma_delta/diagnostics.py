"""What a sigma-delta result carries besides the simulation: the Q-ANN's accuracy, the ANN's
accuracy on the coded input (so a gap can be read at once: coding loss = ANN - coded-input
ANN, quantization loss = coded-input ANN - Q-ANN, dynamics = Q-ANN - SNN), and collapse
warnings.

A run *collapses* when more than :data:`SILENT_FRACTION` of the samples end with no output
spike, or when its accuracy is at most :data:`MAJORITY_MARGIN` above always predicting the
most frequent label (unless that label alone is within the margin of 100 %); each is
reported with ``warnings.warn`` (:class:`CollapseWarning`) and listed under ``warnings`` in
the result, naming the cause and a fix.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from spikecast.ir.graph import Network
from spikecast.schemes.sigma_delta.encoding import InputCoding

if TYPE_CHECKING:
    from spikecast.measure.result import SchemeResult
    from spikecast.schemes.sigma_delta.model import SigmaDeltaModel

SILENT_FRACTION = 0.05
MAJORITY_MARGIN = 0.02


class CollapseWarning(UserWarning):
    """A sigma-delta run whose output is (nearly) silent or no better than a constant."""


def coded_input_accuracy(
    net: Network, coding: InputCoding, x: torch.Tensor, y: torch.Tensor, batch: int = 1000
) -> float:
    """Accuracy of the float ANN on the coded input n(p) / K the spikes encode."""
    with torch.no_grad():
        pred = torch.cat([
            net(coding.coded(x[i : i + batch], torch.float32)).reshape(
                len(x[i : i + batch]), -1).argmax(1)
            for i in range(0, len(x), batch)
        ])
    return float((pred == y).double().mean())


def collapse_warnings(silent: float, y: torch.Tensor, accuracy: float) -> list[str]:
    """The collapse messages of one run (empty when it is healthy): ``silent`` is the share
    of samples whose output neurons all end at 0."""
    out = []
    n = len(y)
    if silent > SILENT_FRACTION:
        out.append(
            f"sigma-delta: {100 * silent:.1f}% of the samples got no output spike (more than "
            f"{100 * SILENT_FRACTION:.0f}%): the quantization levels are too coarse for these "
            "activations, so the readout falls back to the membrane potentials; lower theta "
            "(e.g. theta='auto' or a smaller {'fraction': f})"
        )
    labels = y.cpu().numpy()
    majority = float(np.bincount(labels).max() / n) if n else 0.0
    if n and majority + MAJORITY_MARGIN < 1.0 and accuracy <= majority + MAJORITY_MARGIN:
        out.append(
            f"sigma-delta: accuracy {100 * accuracy:.1f}% is at most "
            f"{100 * MAJORITY_MARGIN:.0f} points above always predicting the majority class "
            f"({100 * majority:.1f}%): the SNN has collapsed; lower theta (theta='auto', a "
            "smaller {'fraction': f}) or raise input_levels"
        )
    return out


def diagnostics(model: SigmaDeltaModel, x: torch.Tensor, y: torch.Tensor,
                result: SchemeResult) -> dict[str, Any]:
    """``qann_accuracy``, ``coded_input_ann_accuracy`` and ``warnings`` of a run; every
    warning is also issued with ``warnings.warn``."""
    found = collapse_warnings(result.silent_fraction or 0.0, y, result.accuracy)
    for message in found:
        warnings.warn(message, CollapseWarning, stacklevel=3)
    return {
        "qann_accuracy": model.qann_accuracy(x, y),
        "coded_input_ann_accuracy": coded_input_accuracy(model.network, model.recipe.coding,
                                                         x, y),
        "warnings": tuple(found),
    }
