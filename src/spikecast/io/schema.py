"""The metadata of spikecast's files, checked field by field where a file is read.

A schema is a tuple of :class:`Field` (name, type, required); :func:`check_fields` refuses
a value that is not a JSON object, a missing required field and a field of another type,
naming the file and the field. Fields a schema does not list are free-form.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from spikecast.checks import MAX_SEED
from spikecast.errors import SpikecastError

Check = Callable[[Any], bool]


def is_text(v: Any) -> bool:
    return isinstance(v, str)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite JSON number (not a boolean)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_positive(v: Any) -> bool:
    return is_number(v) and v > 0


def is_seed(v: Any) -> bool:
    return is_int(v) and 0 <= v <= MAX_SEED


def is_size(v: Any) -> bool:
    return is_int(v) and v >= 1


def is_object(v: Any) -> bool:
    return isinstance(v, dict)


def list_of(item: Check) -> Check:
    """A JSON array whose every element passes ``item``."""
    return lambda v: isinstance(v, list) and all(item(x) for x in v)


def is_shape(v: Any) -> bool:
    """A non-empty list of dimensions >= 1."""
    return list_of(is_size)(v) and len(v) >= 1


@dataclass(frozen=True)
class Field:
    """One metadata field: its name, its check, what the check expects, whether required."""

    name: str
    check: Check
    expect: str
    required: bool = True


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_fields(meta: Any, fields: Sequence[Field], where: str) -> dict[str, Any]:
    """Return ``meta`` if it is an object whose fields match ``fields``, else raise
    :class:`SpikecastError` naming ``where`` and the first wrong field."""
    if not isinstance(meta, dict):
        raise SpikecastError(f"{where}: must hold a JSON object, got {type(meta).__name__}")
    for f in fields:
        if f.name not in meta:
            if f.required:
                raise SpikecastError(f"{where}: field {f.name!r} is missing (expected {f.expect})")
            continue
        if not f.check(meta[f.name]):
            raise SpikecastError(
                f"{where}: field {f.name!r} must be {f.expect}, got {_show(meta[f.name])}"
            )
    return meta


SIDECAR = (
    Field("architecture", is_text, "a text naming a zoo architecture"),
    Field("dataset", is_text, "a text naming a dataset (e.g. 'mnist')"),
    Field("input_shape", is_shape, "a list of dimensions >= 1", required=False),
    Field("seed", is_seed, f"an integer in [0, {MAX_SEED}]", required=False),
    Field("preprocessing", is_text, "a text", required=False),
    Field("test_accuracy", lambda v: v is None or is_number(v), "a number", required=False),
)
"""A model sidecar (:mod:`spikecast.io.annfile`) beyond ``format`` and ``version``."""

LAYER_TYPES = ("Linear", "Conv2d", "AvgPool2d", "MaxPool2d", "Flatten", "ReLU", "Add", "Concat")
_PAIR = list_of(is_int)


def _is_pair(v: Any) -> bool:
    return _PAIR(v) and len(v) == 2 and all(x >= 0 for x in v)


def _is_layer(spec: Any) -> bool:
    """A layer record: its type, and the stride/padding/kernel pairs its type needs."""
    if not isinstance(spec, dict) or spec.get("type") not in LAYER_TYPES:
        return False
    needs = {"Conv2d": ("stride", "padding"),
             "AvgPool2d": ("kernel_size", "stride", "padding"),
             "MaxPool2d": ("kernel_size", "stride", "padding")}.get(spec["type"], ())
    return all(_is_pair(spec.get(k)) and (k == "padding" or min(spec[k]) >= 1) for k in needs)


SNN_FILE = (
    Field("scheme", is_text, "a text naming a scheme"),
    Field("params", is_object, "an object of scheme parameters"),
    Field("input_shape", is_shape, "a list of dimensions >= 1"),
    Field("layers", lambda v: isinstance(v, list) and len(v) >= 1 and all(map(_is_layer, v)),
          f"a non-empty list of layers, each with a 'type' among {', '.join(LAYER_TYPES)} and "
          "its stride, padding and kernel_size as pairs of integers"),
    Field("names", list_of(is_text), "a list of layer names"),
    Field("sources", lambda v: v is None or list_of(list_of(is_int))(v),
          "a list of source-index lists", required=False),
    Field("scales", list_of(is_positive), "a list of finite numbers > 0 (one per layer)",
          required=False),
    Field("calibration", is_object, "an object (the scheme's calibration record)",
          required=False),
    Field("info", is_object, "an object"),
)
"""A converted network's ``spikecast`` metadata (:mod:`spikecast.io.snnfile`) beyond
``format`` and ``version``; lengths are checked against ``layers`` by :func:`check_snn_meta`."""


RESULTS = (
    Field("dataset", is_text, "a text"),
    Field("n_samples", is_size, "an integer >= 1"),
    Field("ann", is_object, "an object"),
    Field("schemes", is_object, "an object with one entry per scheme"),
    Field("network", is_object, "an object"),
    Field("failed", is_object, "an object", required=False),
    Field("energy_presets", is_object, "an object", required=False),
)
"""An extended ``results.json`` (:mod:`spikecast.report.compare`) that ``report`` renders."""


def _numbers(*keys: str) -> tuple[Field, ...]:
    return tuple(Field(k, is_number, "a finite number") for k in keys)


def _objects(*keys: str) -> tuple[Field, ...]:
    return tuple(Field(k, is_object, "an object") for k in keys)


ANN_RESULTS = (
    *_numbers("accuracy", "macs", "effective_macs", "effective_acs", "activation_sparsity",
              "connection_sparsity", "footprint_bytes"),
    *_objects("energy_J"),
)
SCHEME_RESULTS = (
    *_numbers("accuracy", "spikes_per_neuron", "effective_acs", "effective_macs",
              "activation_sparsity"),
    *_objects("latency", "energy_J", "workload"),
    Field("layers", list_of(is_object), "a list of objects"),
)


def check_format(
    meta: Any, where: str, fmt: str, versions: Sequence[int], what: str
) -> dict[str, Any]:
    """Return ``meta`` if it is an object with ``format`` ``fmt`` and a readable
    ``version``, else raise naming ``where``."""
    check_fields(meta, (), where)
    if meta.get("format") != fmt:
        raise SpikecastError(f"{where}: format {meta.get('format')!r}, expected {fmt!r} ({what})")
    if meta.get("version") not in versions:
        raise SpikecastError(
            f"{where}: format version {meta.get('version')!r}; "
            f"this spikecast reads versions {', '.join(map(str, versions))}"
        )
    return meta


def check_snn_meta(meta: Any, where: str, fmt: str, versions: Sequence[int]) -> dict[str, Any]:
    """Format and version, :data:`SNN_FILE` (a ``calibration`` from version 3 on, ``scales``
    before), and one name, one scale (and one source list) per layer."""
    check_format(meta, where, fmt, versions, "a converted spikecast network")
    check_fields(meta, SNN_FILE, where)
    needed = "calibration" if meta["version"] >= 3 else "scales"
    if needed not in meta:
        raise SpikecastError(f"{where}: field {needed!r} is missing")
    n = len(meta["layers"])
    for key in ("names", "scales", "sources"):
        if meta.get(key) is not None and len(meta[key]) != n:
            raise SpikecastError(
                f"{where}: field {key!r} has {len(meta[key])} entries for {n} layers"
            )
    return meta
