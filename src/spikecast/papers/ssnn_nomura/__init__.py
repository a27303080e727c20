"""Nomura et al., An Energy Efficient Stochastic+Spiking Neural Network: Tables I-IV,
sweeps, membrane traces."""
