"""The stochastic+spiking NN of Nomura et al.: PWM input, current-mode synapses, IF circuit.

Package parts: ``recipe`` (parameters, calibration, build), ``model`` (one batch simulated),
``neuron`` (parameters + pure step) and the simulators; attributes load on first use so that
importing one part (e.g. the neuron) does not compile the simulators.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SSNNModel": "spikecast.schemes.ssnn.model",
    "Simulator": "spikecast.schemes.ssnn.model",
    "pwm_pulse_count": "spikecast.schemes.ssnn.model",
    "SSNNRecipe": "spikecast.schemes.ssnn.recipe",
    "SSNNCalibration": "spikecast.schemes.ssnn.recipe",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
