"""Energy presets: hand-computed joules for every preset, the SSNN paper's circuit figures,
and user presets read from TOML and JSON."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from spikecast.energy.base import NetworkCounts, network_counts
from spikecast.energy.digital import CMOS_45NM_FP32, CMOS_45NM_INT8, LOIHI, load_presets
from spikecast.energy.presets import all_presets, estimate_energy, get_preset, register_preset
from spikecast.frontends.torch_fx import capture
from spikecast.measure.opcounts import Workload
from spikecast.zoo.models import ARCHITECTURES

ANN = Workload(1000.0, 0.0, 1200.0, 40.0, 0.0, 0.5, ())
SNN = Workload(100.0, 2000.0, 4800.0, 300.0, 150.0, 0.9, ())
SNN_SPIKES_ONLY = Workload(0.0, 2000.0, 4800.0, 300.0, 150.0, 0.9, ())
COUNTS = NetworkCounts(13, 480, 33)
PJ = 1e-12


def test_cmos_45nm_fp32_golden() -> None:
    assert CMOS_45NM_FP32.ann_energy_J(ANN, COUNTS) == pytest.approx(1000 * 4.6 * PJ)
    # 100 MACs x 4.6 + 2000 ACs x 0.9 + 300 updates x 0.9 = 2530 pJ
    assert CMOS_45NM_FP32.snn_energy_J(SNN, COUNTS) == pytest.approx(2530 * PJ)


def test_cmos_45nm_int8_golden() -> None:
    assert CMOS_45NM_INT8.ann_energy_J(ANN, COUNTS) == pytest.approx(230 * PJ)
    # 100 x 0.23 + 2000 x 0.03 + 300 x 0.03 = 92 pJ
    assert CMOS_45NM_INT8.snn_energy_J(SNN, COUNTS) == pytest.approx(92 * PJ)


def test_loihi_golden_and_no_multiplier() -> None:
    # 2000 synaptic ops x 23.6 pJ + 300 neuron updates x 81 pJ = 71,500 pJ
    assert LOIHI.snn_energy_J(SNN_SPIKES_ONLY, COUNTS) == pytest.approx(71_500 * PJ)
    assert LOIHI.snn_energy_J(SNN, COUNTS) is None
    assert LOIHI.ann_energy_J(ANN, COUNTS) is None


def test_ssnn_180nm_reproduces_the_paper() -> None:
    preset = all_presets()["ssnn-180nm"]
    wine = network_counts(capture(ARCHITECTURES["wine-fc"].build(), (13,)))
    assert wine == COUNTS
    power = preset.snn_energy_J(SNN, wine) / 5e-6
    # Table II total 1.424 mW; it lists 460 synapses at 0.144 mW, the network has 480 at
    # 0.294 uW (0.141 mW), hence 1.421 mW
    assert power == pytest.approx(1.424e-3, rel=3e-3)
    assert power == pytest.approx(13 * 0.88e-3 / 13 + 480 * 0.294e-6 + 33 * 12.12e-6)
    mnist = network_counts(capture(ARCHITECTURES["mnist-fc"].build(), (1, 28, 28)))
    assert mnist == NetworkCounts(784, 784 * 500 + 500 * 10, 510)
    assert preset.snn_energy_J(SNN, mnist) == pytest.approx(0.88e-6, rel=5e-3)
    assert preset.ann_energy_J(ANN, mnist) is None
    assert preset.snn_energy_J(SNN, mnist, "ssnn") == preset.snn_energy_J(SNN, mnist)
    assert preset.snn_energy_J(SNN, mnist, "rate") is None


def test_one_registry_for_digital_and_analog_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    import spikecast.energy.presets as registry

    monkeypatch.setattr(registry, "_PRESETS", dict(registry._PRESETS))
    assert [get_preset(n).name for n in ("ssnn-180nm", "loihi")] == ["ssnn-180nm", "loihi"]
    chip = replace(LOIHI, name="my-chip", e_ac_J=1 * PJ, source="test")
    assert register_preset(chip) is chip and all_presets()["my-chip"] is chip
    assert chip.snn_energy_J(SNN_SPIKES_ONLY, COUNTS) == pytest.approx(
        2000 * PJ + 300 * 81 * PJ)
    with pytest.raises(ValueError, match="already registered"):
        register_preset(chip)
    with pytest.raises(ValueError, match="needs 'name'"):
        register_preset(object())


def test_estimate_energy_table() -> None:
    table = estimate_energy(all_presets(), ANN, SNN, COUNTS, "rate")
    assert set(table) == {"ssnn-180nm", "cmos-45nm-fp32", "cmos-45nm-int8", "loihi"}
    assert table["cmos-45nm-fp32"] == pytest.approx({"ann": 4600 * PJ, "snn": 2530 * PJ})
    assert table["ssnn-180nm"] == {"ann": None, "snn": None}


def test_user_presets_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "chips.toml"
    toml.write_text('[my-chip]\ne_mac_pJ = 2\ne_ac_pJ = 0.5\ne_neuron_update_pJ = 1\n'
                    'source = "datasheet"\n')
    chip = load_presets(toml)["my-chip"]
    # 100 x 2 + 2000 x 0.5 + 300 x 1 = 1500 pJ
    assert chip.snn_energy_J(SNN, COUNTS) == pytest.approx(1500 * PJ)
    js = tmp_path / "chips.json"
    js.write_text(json.dumps({"spiky": {"e_ac_pJ": 1, "source": "paper"}}))
    presets = all_presets(js)
    assert presets["spiky"].snn_energy_J(SNN, COUNTS) is None
    assert presets["spiky"].snn_energy_J(SNN_SPIKES_ONLY, COUNTS) == pytest.approx(2000 * PJ)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"x": {"e_ac_pJ": 1, "source": "s", "e_acc": 2}}, "unknown keys"),
        ({"x": {"e_ac_pJ": 1}}, "needs 'source'"),
        ({"x": {"e_ac_pJ": -1, "source": "s"}}, "finite value >= 0"),
        ({"x": {"e_ac_pJ": "1", "source": "s"}}, "must be a number"),
        ({"loihi": {"e_ac_pJ": 1, "source": "s"}}, "clashes with a built-in"),
        ({}, "one table per preset"),
    ],
)
def test_user_preset_errors(tmp_path: Path, content: dict, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message):
        all_presets(path)


def test_user_preset_file_type(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("x: 1")
    with pytest.raises(ValueError, match=r"\.toml or \.json"):
        load_presets(path)
