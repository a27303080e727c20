"""Coding schemes: the recipe/model protocol, the registry and the converter."""

from spikecast.schemes.base import (
    Calibration,
    Recipe,
    SpikingModel,
    Summary,
    Tally,
    UnsupportedGraph,
)
from spikecast.schemes.convert import convert
from spikecast.schemes.registry import (
    get_recipe,
    recipe_class,
    register,
    scheme_names,
    unregister,
)

__all__ = [
    "Calibration",
    "Recipe",
    "SpikingModel",
    "Summary",
    "Tally",
    "UnsupportedGraph",
    "convert",
    "get_recipe",
    "recipe_class",
    "register",
    "scheme_names",
    "unregister",
]
