"""Coding schemes, looked up by name: ``{name: "module:Recipe"}``, imported on first use."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from spikecast.schemes.base import Recipe, SpikingModel, convert

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
    """Instantiate the recipe ``name`` with ``params``; unknown keys raise ``ValueError``."""
    cls = recipe_class(name)
    allowed = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
    unknown = sorted(set(params) - set(allowed)) if allowed else []
    if unknown:
        raise ValueError(
            f"scheme {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters: {', '.join(allowed)}"
        )
    return cls(**params)


__all__ = ["RECIPES", "Recipe", "SpikingModel", "convert", "get_recipe", "recipe_class"]
