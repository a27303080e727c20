"""spikecast's metadata in NIR graphs and nodes: a JSON string under the key ``"spikecast"``
(HDF5 keeps strings intact, not nested lists)."""

from __future__ import annotations

import json
from typing import Any

import nir

META_KEY = "spikecast"


def dump_meta(values: dict[str, Any]) -> dict[str, str]:
    """``{"spikecast": json}``: node or graph metadata that survives nir.write/nir.read."""
    return {META_KEY: json.dumps(values, sort_keys=True)}


def load_meta(node: nir.NIRNode, where: str) -> dict[str, Any]:
    """The spikecast metadata of ``node`` (empty when another tool wrote it)."""
    raw = (getattr(node, "metadata", None) or {}).get(META_KEY)
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode("utf8")
    try:
        values = json.loads(raw)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: unreadable spikecast metadata {raw!r}: {exc}") from exc
    if not isinstance(values, dict):
        raise ValueError(f"{where}: spikecast metadata must be a JSON object, got {raw!r}")
    return values
