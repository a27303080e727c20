"""Digital energy presets: joules per operation, for the ANN and every SNN scheme.

They price the NeuroBench counts of :mod:`spikecast.measure.opcounts`:

    E_ANN = MACs_eff E_MAC + ACs_eff E_AC
    E_SNN = MACs_eff E_MAC + ACs_eff E_AC + neuron_updates E_update

(the ANN is credited with skipping zero activations, which favours the ANN). Users add
presets from a TOML or JSON file (:func:`load_presets`)::

    [my-chip]
    e_mac_pJ = 1.2
    e_ac_pJ = 0.3
    e_neuron_update_pJ = 0.1
    source = "datasheet v2, table 4"
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: JSON presets only
    tomllib = None

from spikecast.energy.base import NetworkCounts

if TYPE_CHECKING:
    from spikecast.measure.opcounts import Workload

PJ = 1e-12


def _check_energy(name: str, key: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"energy preset {name!r}: {key} must be a finite value >= 0, got {value}")


@dataclass(frozen=True)
class DigitalEnergyModel:
    """Energy per operation of a digital accelerator (J). ``e_mac_J`` None: the hardware has
    no multiplier for graded inputs, so any MAC makes the estimate undefined (None)."""

    name: str
    e_mac_J: float | None
    e_ac_J: float
    e_neuron_update_J: float
    source: str

    def __post_init__(self) -> None:
        for key in ("e_mac_J", "e_ac_J", "e_neuron_update_J"):
            _check_energy(self.name, key, getattr(self, key))

    def _ops_J(self, work: Workload) -> float | None:
        if work.effective_macs > 0 and self.e_mac_J is None:
            return None
        return (work.effective_macs * (self.e_mac_J or 0.0)) + work.effective_acs * self.e_ac_J

    def ann_energy_J(self, ann: Workload, counts: NetworkCounts) -> float | None:
        """MACs_eff E_MAC + ACs_eff E_AC of the ANN's pass."""
        return self._ops_J(ann)

    def snn_energy_J(
        self, snn: Workload, counts: NetworkCounts, scheme: str | None = None
    ) -> float | None:
        """MACs_eff E_MAC + ACs_eff E_AC + neuron updates E_update (any scheme)."""
        ops = self._ops_J(snn)
        return None if ops is None else ops + snn.neuron_updates * self.e_neuron_update_J

    def energy_per_classification_J(self, n_inputs: int, n_synapses: int, n_neurons: int
                                    ) -> float:
        """A dense pass: n_synapses E_MAC (E_AC without a multiplier) + n_neurons E_update."""
        per_synapse = self.e_ac_J if self.e_mac_J is None else self.e_mac_J
        return n_synapses * per_synapse + n_neurons * self.e_neuron_update_J


CMOS_45NM_FP32 = DigitalEnergyModel(
    name="cmos-45nm-fp32",
    e_mac_J=4.6 * PJ,
    e_ac_J=0.9 * PJ,
    e_neuron_update_J=0.9 * PJ,
    source="Horowitz, Computing's energy problem, ISSCC 2014: 45 nm, 32-bit float "
    "multiply 3.7 pJ + add 0.9 pJ = 4.6 pJ per MAC, add 0.9 pJ per AC and per IF "
    "membrane update",
)
CMOS_45NM_INT8 = DigitalEnergyModel(
    name="cmos-45nm-int8",
    e_mac_J=(0.2 + 0.03) * PJ,
    e_ac_J=0.03 * PJ,
    e_neuron_update_J=0.03 * PJ,
    source="Horowitz, ISSCC 2014: 45 nm, 8-bit integer multiply 0.2 pJ + add 0.03 pJ "
    "= 0.23 pJ per MAC, add 0.03 pJ per AC and per membrane update",
)
LOIHI = DigitalEnergyModel(
    name="loihi",
    e_mac_J=None,
    e_ac_J=23.6 * PJ,
    e_neuron_update_J=81.0 * PJ,
    source="Davies et al., Loihi: a neuromorphic manycore processor with on-chip learning, "
    "IEEE Micro 38(1) 2018, Table 2: 23.6 pJ per synaptic spike op (min), 81 pJ per "
    "active neuron update (52 pJ inactive); binary spikes only, so no MACs",
)

_FILE_KEYS = {"e_mac_pJ", "e_ac_pJ", "e_neuron_update_pJ", "source"}


def _preset_from_table(name: str, table: Any) -> DigitalEnergyModel:
    if not isinstance(table, dict):
        raise ValueError(f"energy preset {name!r} must be a table of {sorted(_FILE_KEYS)}")
    unknown = set(table) - _FILE_KEYS
    if unknown:
        raise ValueError(
            f"energy preset {name!r}: unknown keys {sorted(unknown)}; allowed: "
            f"{sorted(_FILE_KEYS)}"
        )
    for key in ("e_ac_pJ", "source"):
        if key not in table:
            raise ValueError(f"energy preset {name!r} needs {key!r}")
    values = {}
    for key in ("e_mac_pJ", "e_ac_pJ", "e_neuron_update_pJ"):
        value = table.get(key, 0.0 if key == "e_neuron_update_pJ" else None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"energy preset {name!r}: {key} must be a number, got {value!r}")
        values[key] = None if value is None else float(value) * PJ
    return DigitalEnergyModel(
        name, values["e_mac_pJ"], values["e_ac_pJ"], values["e_neuron_update_pJ"],
        str(table["source"]),
    )


def load_presets(path: str | Path) -> dict[str, DigitalEnergyModel]:
    """User presets from a ``.toml`` or ``.json`` file: one table per preset name with
    ``e_ac_pJ`` and ``source`` (required), ``e_mac_pJ`` (omit: no multiplier) and
    ``e_neuron_update_pJ`` (default 0)."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".toml":
        if tomllib is None:
            raise ValueError(f"{path}: TOML presets need Python >= 3.11; use a .json file")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML: {exc}") from None
    elif path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: invalid JSON: {exc}") from None
    else:
        raise ValueError(
            f"{path}: energy presets are read from .toml or .json, not {path.suffix!r}"
        )
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected one table per preset name")
    return {name: _preset_from_table(name, table) for name, table in data.items()}
