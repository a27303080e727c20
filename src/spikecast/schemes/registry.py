"""The scheme registry: ``{name: recipe class}``; built-ins are imported on first use.

``register(MyRecipe)`` (or ``@register`` on the class) adds a scheme under its ``name``;
every command, the report and the contract test then know it.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from spikecast.schemes.base import Recipe
from spikecast.schemes.params import check_params

_BUILTIN = {
    "rate": "spikecast.schemes.rate:RateRecipe",
    "ssnn": "spikecast.schemes.ssnn:SSNNRecipe",
    "sigma-delta": "spikecast.schemes.sigma_delta:SigmaDeltaRecipe",
}
_REGISTRY: dict[str, type[Recipe] | str] = dict(_BUILTIN)


def register(recipe: type[Recipe], *, replace: bool = False) -> type[Recipe]:
    """Register ``recipe`` under ``recipe.name`` (a ``ValueError`` if taken, unless
    ``replace``); returns it, so it can decorate the class."""
    if not (isinstance(recipe, type) and issubclass(recipe, Recipe)):
        raise ValueError(f"register expects a Recipe subclass, got {recipe!r}")
    if not dataclasses.is_dataclass(recipe):
        raise ValueError(f"{recipe.__name__} must be a (frozen) dataclass of its parameters")
    if "readout" not in {f.name for f in dataclasses.fields(recipe)}:
        raise ValueError(f"{recipe.__name__} needs a 'readout' field (a measure.readout.Readout)")
    name = getattr(recipe, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{recipe.__name__} needs a class attribute 'name'")
    if name in _REGISTRY and not replace:
        raise ValueError(f"scheme {name!r} is already registered; pass replace=True")
    _REGISTRY[name] = recipe
    return recipe


def unregister(name: str) -> None:
    """Remove the scheme ``name`` (built-ins included)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown scheme {name!r}; known: {', '.join(_REGISTRY)}")
    del _REGISTRY[name]


def scheme_names() -> tuple[str, ...]:
    """Every registered scheme, built-ins first."""
    return tuple(_REGISTRY)


def recipe_class(name: str) -> type[Recipe]:
    """The recipe class registered under ``name``; ``ValueError`` lists the known schemes."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise ValueError(f"unknown scheme {name!r}; known: {', '.join(_REGISTRY)}")
    if isinstance(entry, str):
        module, cls = entry.split(":")
        entry = _REGISTRY[name] = getattr(importlib.import_module(module), cls)
    return entry


def get_recipe(name: str, **params: Any) -> Recipe:
    """Instantiate the recipe ``name`` with ``params``; unknown keys and values of the wrong
    type raise ``ValueError`` (:func:`~spikecast.schemes.params.check_params`)."""
    cls = recipe_class(name)
    check_params(cls, name, params)
    return cls(**params)
