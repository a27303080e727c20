"""The stochastic+spiking NN of Nomura et al.: PWM input, current-mode synapses, IF circuit."""

from spikecast.schemes.ssnn.model import Simulator, SSNNModel, pwm_pulse_count
from spikecast.schemes.ssnn.recipe import SSNNRecipe

__all__ = ["SSNNModel", "SSNNRecipe", "Simulator", "pwm_pulse_count"]
