"""Converted-network files: exact round trip and clear errors for bad files."""

import json

import pytest
import torch
from dag_models import ResidualBlock, trained_like
from safetensors.torch import save_file

from spikecast.frontends.torch_fx import capture
from spikecast.io.snnfile import ConvertedFile, load_converted, save_converted
from spikecast.ir.normalize import data_based
from spikecast.zoo.models import ARCHITECTURES


@pytest.fixture
def converted(tmp_path):
    torch.manual_seed(0)
    arch = ARCHITECTURES["mnist-cnn"]
    net = capture(arch.build().eval(), arch.input_shape)
    norm = data_based(net, torch.rand(16, *arch.input_shape))
    params = {"steps": 25, "reset": "subtract"}
    conv = ConvertedFile("rate", params, net, norm, {"dataset": "mnist"})
    return save_converted(tmp_path / "snn.spikecast", conv), conv


def test_round_trip_is_exact(converted) -> None:
    path, conv = converted
    back = load_converted(path)
    assert back.scheme == "rate" and back.params == {"steps": 25, "reset": "subtract"}
    assert back.info == {"dataset": "mnist"}
    assert back.normalized.scales == pytest.approx(conv.normalized.scales)
    assert back.ann.names == conv.ann.names
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(back.ann(x), conv.ann(x))
    assert torch.equal(back.normalized.network(x), conv.normalized.network(x))


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
    _rewrite_meta(path, lambda m, t: t.update({"snn.7.weight": torch.zeros(256, 100)}))
    with pytest.raises(ValueError, match="layer graph is inconsistent"):
        load_converted(path)
    _rewrite_meta(path, lambda m, t: t.update({"snn.7.weight": torch.zeros(3, 392)}))
    with pytest.raises(ValueError, match=r"'snn.7.weight' has shape \(3, 392\)"):
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
    norm = data_based(net, torch.rand(16, 1, 6, 6))
    conv = ConvertedFile("rate", {"steps": 25}, net, norm, {})
    return save_converted(tmp_path / "dag.spikecast", conv), conv


def test_dag_round_trip_keeps_sources_and_merge_weights(converted_dag) -> None:
    path, conv = converted_dag
    back = load_converted(path)
    assert back.ann.sources == conv.ann.sources and not back.ann.is_chain
    merge = [layer.weights for layer in back.normalized.network.layers if hasattr(layer, "weights")]
    want = [layer.weights for layer in conv.normalized.network.layers if hasattr(layer, "weights")]
    assert merge == want and merge[0] != (1.0, 1.0)  # normalization rescaled the skip
    x = torch.rand(3, 1, 6, 6)
    assert torch.equal(back.normalized.network(x), conv.normalized.network(x))


def test_dag_with_bad_sources_is_refused(converted_dag) -> None:
    path, conv = converted_dag
    good = [list(src) for src in conv.ann.sources]
    _rewrite_meta(path, lambda m, t: m.update(sources=good[:-1]))
    with pytest.raises(ValueError, match="field 'sources' has 9 entries for 10 layers"):
        load_converted(path)
    _rewrite_meta(path, lambda m, t: m.update(sources=[[5], *good[1:]]))
    with pytest.raises(ValueError, match=r"layer graph is inconsistent.*earlier layers"):
        load_converted(path)
