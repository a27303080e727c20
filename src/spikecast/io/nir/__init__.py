"""NIR (Neuromorphic Intermediate Representation) export and import of rate-coded models.

Needs the optional ``nir`` package (``pip install 'spikecast[nir]'``), imported on first
use so that the command line works without it (imports are absolute: ``import nir`` here
is the NIR package, not this one).
"""

from __future__ import annotations

from spikecast.lazy import lazy_attributes

_EXPORTS = {
    "export_nir": "spikecast.io.nir.export",
    "write_nir": "spikecast.io.nir.export",
    "write_graph": "spikecast.io.nir.export",
    "NirDialect": "spikecast.io.nir.dialect",
    "read_nir": "spikecast.io.nir.import_chain",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
