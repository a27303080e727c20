"""Rate coding (SNN Toolbox baseline): IF neurons, clock-driven simulation.

Package parts: ``recipe`` (parameters, calibration, build), ``model`` (one batch simulated),
``neuron`` (parameters + pure step) and the simulators; attributes load on first use so that
importing one part (e.g. the neuron) does not compile the simulators.
"""

from __future__ import annotations

from spikecast.lazy import lazy_attributes

_EXPORTS = {
    "RateModel": "spikecast.schemes.rate.model",
    "accuracy_at": "spikecast.schemes.rate.model",
    "Normalization": "spikecast.schemes.rate.recipe",
    "RateRecipe": "spikecast.schemes.rate.recipe",
    "RateCalibration": "spikecast.schemes.rate.recipe",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
