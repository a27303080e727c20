"""Coding schemes, looked up by name: ``{name: "module:Recipe"}``, imported on first use."""

from __future__ import annotations

import importlib
from typing import Any

from spikecast.schemes.base import Recipe, SpikingModel, convert
from spikecast.schemes.params import check_params

RECIPES: dict[str, str] = {
    "rate": "spikecast.schemes.rate.recipe:RateRecipe",
    "ssnn": "spikecast.schemes.ssnn.recipe:SSNNRecipe",
    "sigma-delta": "spikecast.schemes.sigma_delta.recipe:SigmaDeltaRecipe",
}


def recipe_class(name: str) -> type[Recipe]:
    """The recipe class registered under ``name``; ``ValueError`` lists the known schemes."""
    if name not in RECIPES:
        raise ValueError(f"unknown scheme {name!r}; known: {', '.join(RECIPES)}")
    module, cls = RECIPES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_recipe(name: str, **params: Any) -> Recipe:
    """Instantiate the recipe ``name`` with ``params``; unknown keys and values of the wrong
    type raise ``ValueError`` (:func:`~spikecast.schemes.params.check_params`)."""
    cls = recipe_class(name)
    check_params(cls, name, params)
    return cls(**params)


__all__ = ["RECIPES", "Recipe", "SpikingModel", "convert", "get_recipe", "recipe_class"]
