"""Scheme parameters checked against the recipe's signature, once, where they enter.

Parameters come from ``--param KEY=VALUE``, from a converted file's metadata or from
Python. :func:`check_params` refuses unknown names (listing the known ones) and values
whose type differs from the recipe constructor's annotation (a number where a number is
declared, finite; an integer; text or an enum value; a list of those); the recipe itself
checks ranges. :func:`with_seed` hands a command's ``--seed`` to every seed parameter the
user did not set.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from spikecast.errors import SpikecastError

__all__ = ["check_params", "parameter_names", "seed_parameters", "with_seed"]


def parameter_names(cls: type) -> list[str]:
    """The keyword parameters of the recipe class's constructor, in order."""
    return [p.name for p in inspect.signature(cls).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def seed_parameters(cls: type) -> list[str]:
    """The parameters that seed a random choice: ``seed`` and every ``*_seed``."""
    return [n for n in parameter_names(cls) if n == "seed" or n.endswith("_seed")]


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls if dataclasses.is_dataclass(cls) else cls.__init__)


def _describe(tp: Any) -> str:
    """A reader's name for an annotation: ``a number``, ``a list of numbers``, ..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_describe(a) for a in args))
    if origin in (list, tuple, Sequence):
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if tp is type(None):
        return "null"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a finite number"
    if tp is str:
        return "a text"
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if dataclasses.is_dataclass(tp):
        return f"an object with keys {', '.join(f.name for f in dataclasses.fields(tp))}"
    return getattr(tp, "__name__", str(tp))


def _fits(value: Any, tp: Any) -> bool:
    """Whether ``value`` (parsed JSON or a Python object) has the declared type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin in (list, tuple, Sequence):
        return isinstance(value, (list, tuple)) and all(_fits(v, args[0]) for v in value)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value))
    if isinstance(tp, type) and issubclass(tp, Enum):
        return isinstance(value, (tp, str))
    if dataclasses.is_dataclass(tp):
        return isinstance(value, (tp, Mapping))
    return not isinstance(tp, type) or isinstance(value, tp)


def check_params(cls: type, scheme: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`SpikecastError` for a name the recipe ``cls`` does not take or a value
    of another type than its annotation declares."""
    names = parameter_names(cls)
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise SpikecastError(
            f"scheme {scheme!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters: {', '.join(names)}"
        )
    hints = _hints(cls)
    for key, value in params.items():
        tp = hints.get(key, Any)
        if not _fits(value, tp):
            raise SpikecastError(
                f"scheme {scheme!r}: parameter {key!r} must be {_describe(tp)}, got {value!r}"
            )


def with_seed(cls: type, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """``params`` with ``seed`` given to every seed parameter of ``cls`` not set in them."""
    return {key: seed for key in seed_parameters(cls)} | dict(params)
