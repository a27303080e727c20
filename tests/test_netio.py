"""Converted-network files: exact round trip (the calibration record rebuilds the same model),
version-2 files still load, and clear errors for bad files."""

import json

import pytest
import torch
from dag_models import ResidualBlock, trained_like
from safetensors.torch import save_file

from spikecast.frontends.torch_fx import capture
from spikecast.io.snnfile import _tensors, load_converted, load_network
from spikecast.schemes import convert, get_recipe
from spikecast.zoo.models import ARCHITECTURES


@pytest.fixture
def converted(tmp_path):
    torch.manual_seed(0)
    arch = ARCHITECTURES["mnist-cnn"]
    net = capture(arch.build().eval(), arch.input_shape)
    snn = convert(net, get_recipe("rate", steps=25), torch.rand(16, *arch.input_shape))
    return snn.save(tmp_path / "snn.spikecast", {"dataset": "mnist"}), snn


def test_round_trip_is_exact(converted) -> None:
    path, snn = converted
    back = load_converted(path)
    assert back.scheme == "rate" and back.params == snn.recipe.params()
    assert back.info == {"dataset": "mnist"}
    assert back.calibration == {"scales": list(snn.calibration.scales)}
    assert back.ann.names == snn.ann.names
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(back.ann(x), snn.ann(x))
    model = load_network(path)
    assert model.calibration == snn.calibration
    assert torch.equal(model.network(x), snn.network(x))


def test_version_2_file_still_loads(converted) -> None:
    """A version-2 file held the normalized network and its scales; loading it rebuilds
    the same model as the calibration record does."""
    path, snn = converted
    _rewrite_meta(path, lambda m, t: (
        m.update(version=2, scales=m.pop("calibration")["scales"]),
        t.update(_tensors("snn", snn.network)),
    ))
    model = load_network(path)
    assert model.calibration == snn.calibration
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model.network(x), snn.network(x))


def test_a_file_without_v_init_started_its_membranes_at_zero(converted) -> None:
    path, snn = converted
    assert snn.recipe.v_init == 0.5  # the default now
    _rewrite_meta(path, lambda m, t: m["params"].pop("v_init"))  # as written before it existed
    assert load_network(path).recipe.v_init == 0.0


def test_tampered_calibration_is_refused(converted) -> None:
    path, _ = converted
    _rewrite_meta(path, lambda m, t: m.update(calibration={"lambdas": [1.0]}))
    with pytest.raises(ValueError, match=r"bad calibration for scheme .rate.*scales"):
        load_network(path)


def test_truncated_file(converted) -> None:
    path, _ = converted
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_converted(path)


def _rewrite_meta(path, change) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["spikecast"])
    tensors = load_file(str(path))
    change(meta, tensors)
    save_file(tensors, str(path), {"spikecast": json.dumps(meta)})


def test_unknown_version(converted) -> None:
    path, _ = converted
    _rewrite_meta(path, lambda m, t: m.update(version=99))
    with pytest.raises(ValueError, match="version 99"):
        load_converted(path)


def test_mismatched_tensor_shape(converted) -> None:
    path, _ = converted
    _rewrite_meta(path, lambda m, t: t.update({"ann.7.weight": torch.zeros(256, 100)}))
    with pytest.raises(ValueError, match="layer graph is inconsistent"):
        load_converted(path)
    _rewrite_meta(path, lambda m, t: t.update({"ann.7.weight": torch.zeros(3, 392)}))
    with pytest.raises(ValueError, match=r"'ann.7.weight' has shape \(3, 392\)"):
        load_converted(path)


def test_missing_tensor(converted) -> None:
    path, _ = converted
    _rewrite_meta(path, lambda m, t: t.pop("ann.0.weight"))
    with pytest.raises(ValueError, match=r"'ann\.0\.weight' missing"):
        load_converted(path)


def test_plain_safetensors_without_metadata(tmp_path) -> None:
    path = tmp_path / "x.spikecast"
    save_file({"a": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="without spikecast metadata"):
        load_converted(path)


@pytest.fixture
def converted_dag(tmp_path):
    torch.manual_seed(0)
    net = capture(trained_like(ResidualBlock()), (1, 6, 6))
    snn = convert(net, get_recipe("rate", steps=25), torch.rand(16, 1, 6, 6))
    return snn.save(tmp_path / "dag.spikecast"), snn


def test_dag_round_trip_keeps_sources_and_merge_weights(converted_dag) -> None:
    path, snn = converted_dag
    back = load_network(path)
    assert back.ann.sources == snn.ann.sources and not back.ann.is_chain
    merge = [layer.weights for layer in back.network.layers if hasattr(layer, "weights")]
    want = [layer.weights for layer in snn.network.layers if hasattr(layer, "weights")]
    assert merge == want and merge[0] != (1.0, 1.0)  # normalization rescaled the skip
    x = torch.rand(3, 1, 6, 6)
    assert torch.equal(back.network(x), snn.network(x))


def test_dag_with_bad_sources_is_refused(converted_dag) -> None:
    path, snn = converted_dag
    good = [list(src) for src in snn.ann.sources]
    _rewrite_meta(path, lambda m, t: m.update(sources=good[:-1]))
    with pytest.raises(ValueError, match="field 'sources' has 9 entries for 10 layers"):
        load_converted(path)
    _rewrite_meta(path, lambda m, t: m.update(sources=[[5], *good[1:]]))
    with pytest.raises(ValueError, match=r"layer graph is inconsistent.*earlier layers"):
        load_converted(path)


@pytest.mark.parametrize("bad", [[-1.0], [float("nan")], [0.0], []])
def test_non_positive_calibration_values_are_refused(converted, bad) -> None:
    path, snn = converted
    n = len(snn.calibration.scales)
    _rewrite_meta(path, lambda m, t: m.update(calibration={"scales": (bad * n)[:n] or []}))
    with pytest.raises(ValueError, match="scales must be finite numbers > 0"):
        load_network(path)


def test_version_3_file_needs_its_calibration(converted) -> None:
    path, _ = converted
    _rewrite_meta(path, lambda m, t: m.pop("calibration"))
    with pytest.raises(ValueError, match="field 'calibration' is missing"):
        load_converted(path)
