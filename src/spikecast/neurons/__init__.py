"""Neuron models: frozen parameter records and pure ``step(x, state, p)`` functions."""

from spikecast.neurons.integrate_fire import Choice, IFParams, IFState, Reset, if_step

__all__ = ["Choice", "IFParams", "IFState", "Reset", "if_step"]
