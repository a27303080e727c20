"""Sigma-delta conversion (Yousefzadeh et al.): hysteresis-quantized neurons, signed spikes.

Package parts: ``recipe`` (parameters, calibration, build), ``model`` (one batch simulated),
``neuron`` (parameters + pure step) and the simulators; attributes load on first use so that
importing one part (e.g. the neuron) does not compile the simulators.
"""

from __future__ import annotations

from spikecast.lazy import lazy_attributes

_EXPORTS = {
    "SigmaDeltaModel": "spikecast.schemes.sigma_delta.model",
    "SimMode": "spikecast.schemes.sigma_delta.model",
    "SigmaDeltaRecipe": "spikecast.schemes.sigma_delta.recipe",
    "SigmaDeltaCalibration": "spikecast.schemes.sigma_delta.recipe",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
