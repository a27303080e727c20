"""The one energy preset registry: digital and analog presets alike, with cited sources.

``register_preset(preset)`` adds one (any object implementing
:class:`~spikecast.energy.base.EnergyPreset`); ``get_preset(name)`` finds one;
``all_presets(user_file)`` is every registered preset plus a user's TOML/JSON file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from spikecast.energy.base import EnergyPreset, NetworkCounts
from spikecast.energy.circuit import SSNN_180NM
from spikecast.energy.digital import CMOS_45NM_FP32, CMOS_45NM_INT8, LOIHI, load_presets

if TYPE_CHECKING:
    from spikecast.measure.opcounts import Workload

_PRESETS: dict[str, EnergyPreset] = {
    p.name: p for p in (SSNN_180NM, CMOS_45NM_FP32, CMOS_45NM_INT8, LOIHI)
}


def register_preset(preset: EnergyPreset, *, replace: bool = False) -> EnergyPreset:
    """Add ``preset`` under its name (``ValueError`` if taken, unless ``replace``)."""
    for attr in ("name", "source", "ann_energy_J", "snn_energy_J"):
        if not hasattr(preset, attr):
            raise ValueError(f"an energy preset needs {attr!r}; {preset!r} has none")
    if preset.name in _PRESETS and not replace:
        raise ValueError(f"energy preset {preset.name!r} is already registered")
    _PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> EnergyPreset:
    """The preset ``name``; ``ValueError`` lists the known presets."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown energy preset {name!r}; known: {', '.join(_PRESETS)}"
        ) from None


def all_presets(user_file: str | Path | None = None) -> dict[str, EnergyPreset]:
    """Every registered preset, then the user's from ``user_file`` (a user preset may not
    reuse a registered name)."""
    presets = dict(_PRESETS)
    if user_file is not None:
        for name, preset in load_presets(user_file).items():
            if name in presets:
                raise ValueError(f"user energy preset {name!r} clashes with a built-in preset")
            presets[name] = preset
    return presets


def estimate_energy(
    presets: dict[str, EnergyPreset], ann: Workload, snn: Workload, counts: NetworkCounts,
    scheme: str | None = None,
) -> dict[str, dict[str, float | None]]:
    """``{preset: {"ann": J, "snn": J}}`` per inference of ``scheme`` (None: undefined)."""
    return {
        name: {"ann": p.ann_energy_J(ann, counts), "snn": p.snn_energy_J(snn, counts, scheme)}
        for name, p in presets.items()
    }
