"""``KEY=VALUE`` values from the command line, read as strict JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from spikecast.errors import SpikecastError


class _NotFinite(Exception):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def parse_value(text: str, item: str) -> Any:
    """``text`` read as JSON where it parses (``25`` -> 25, ``[1, 2]`` -> a list), else the
    text itself (``zero`` -> "zero"). ``NaN``, ``Infinity`` and ``1e999`` are refused:
    every parameter is finite. ``item`` (the whole ``KEY=VALUE``) names it in the error."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError:
        return text
    except _NotFinite as exc:
        raise SpikecastError(
            f"{item!r}: {exc} is not a finite number; parameters must be finite"
        ) from None
