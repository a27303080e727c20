"""Sigma-delta conversion (Yousefzadeh et al.): hysteresis-quantized neurons, signed spikes."""

from spikecast.schemes.sigma_delta.model import SigmaDeltaModel, SimMode
from spikecast.schemes.sigma_delta.recipe import SigmaDeltaRecipe

__all__ = ["SigmaDeltaModel", "SigmaDeltaRecipe", "SimMode"]
