"""The stochastic+spiking NN of Nomura et al.: PWM input, current-mode synapses, IF circuit.

Package parts: ``recipe`` (parameters, calibration, build), ``model`` (one batch simulated),
``neuron`` (parameters + pure step) and the simulators; attributes load on first use so that
importing one part (e.g. the neuron) does not compile the simulators.
"""

from __future__ import annotations

from spikecast.lazy import lazy_attributes

_EXPORTS = {
    "SSNNModel": "spikecast.schemes.ssnn.model",
    "Simulator": "spikecast.schemes.ssnn.model",
    "pwm_pulse_count": "spikecast.schemes.ssnn.model",
    "SSNNRecipe": "spikecast.schemes.ssnn.recipe",
    "SSNNCalibration": "spikecast.schemes.ssnn.recipe",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
