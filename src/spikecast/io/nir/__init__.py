"""NIR (Neuromorphic Intermediate Representation) export and import of rate-coded models.

Needs the optional ``nir`` package (``pip install 'spikecast[nir]'``), imported on first
use so that the command line works without it. The package is named ``nirio`` so that it
does not shadow ``nir`` itself.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "export_nir": "spikecast.io.nir.export",
    "write_nir": "spikecast.io.nir.export",
    "write_graph": "spikecast.io.nir.export",
    "NirDialect": "spikecast.io.nir.dialect",
    "read_nir": "spikecast.io.nir.import_chain",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'spikecast.io.nir' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
