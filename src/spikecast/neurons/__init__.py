"""Neuron models: frozen parameter records and pure ``step(x, state, p)`` functions."""

from spikecast.choice import Choice
from spikecast.neurons.integrate_fire import IFParams, IFState, Reset, if_step

__all__ = ["Choice", "IFParams", "IFState", "Reset", "if_step"]
