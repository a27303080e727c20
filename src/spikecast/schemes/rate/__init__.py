"""Rate coding (SNN Toolbox baseline): IF neurons, clock-driven simulation."""

from spikecast.schemes.rate.model import RateModel, accuracy_at
from spikecast.schemes.rate.recipe import Normalization, RateRecipe

__all__ = ["Normalization", "RateModel", "RateRecipe", "accuracy_at"]
