"""The stochastic+spiking neural network (SSNN) of Nomura et al.: PWM (TBSC) inputs,
current-mode synapses, non-leaky IF neurons, exact and clock-driven simulators."""
