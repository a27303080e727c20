"""Sigma-delta conversion (Yousefzadeh et al.): hysteresis-quantized neurons, signed spikes.

Package parts: ``recipe`` (parameters, calibration, build), ``model`` (one batch simulated),
``neuron`` (parameters + pure step) and the simulators; attributes load on first use so that
importing one part (e.g. the neuron) does not compile the simulators.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SigmaDeltaModel": "spikecast.schemes.sigma_delta.model",
    "SimMode": "spikecast.schemes.sigma_delta.model",
    "SigmaDeltaRecipe": "spikecast.schemes.sigma_delta.recipe",
    "SigmaDeltaCalibration": "spikecast.schemes.sigma_delta.recipe",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
