"""Model files (safetensors + JSON sidecar) and the shipped pretrained MNIST models."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
import torch
from mnist_data import MNIST_KINDS, load_mnist
from safetensors.torch import save_file
from torch import nn

import spikecast.zoo.pretrained
from spikecast.io.annfile import FORMAT, VERSION, load_model, save_model, sidecar_path
from spikecast.zoo.models import get_architecture
from spikecast.zoo.pretrained import PRETRAINED, load_pretrained
from spikecast.zoo.train import TrainedModel, evaluate_ann, train_model


@pytest.fixture(scope="module")
def trained_wine() -> TrainedModel:
    return train_model("wine-fc", "wine", epochs=2, seed=3, progress=False, threads=1)


@pytest.fixture
def saved(tmp_path: Path, trained_wine: TrainedModel) -> Path:
    return save_model(
        trained_wine, tmp_path / "wine.safetensors", arch="wine-fc", metadata={"command": "x"}
    )


def _edit_sidecar(path: Path, **changes: object) -> None:
    side = sidecar_path(path)
    info = json.loads(side.read_text()) | changes
    side.write_text(json.dumps(info))


def test_round_trip_gives_identical_outputs_and_metadata(
    saved: Path, trained_wine: TrainedModel
) -> None:
    model, info = load_model(saved)
    x = torch.rand(50, 13, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(x), trained_wine.model(x))
    assert not model.training
    assert info["format"] == FORMAT and info["version"] == VERSION
    assert info["architecture"] == "wine-fc"
    assert info["dataset"] == "wine"
    assert info["input_shape"] == [13]
    assert info["seed"] == 3 and info["epochs"] == 2
    assert info["test_accuracy"] == trained_wine.test_accuracy
    assert info["hyperparameters"] == trained_wine.hyperparameters
    assert info["command"] == "x"
    assert sorted(p.name for p in saved.parent.iterdir()) == ["wine.json", "wine.safetensors"]
    umask = os.umask(0o022)
    os.umask(umask)
    for written in (saved, sidecar_path(saved)):
        assert written.stat().st_mode & 0o777 == 0o666 & ~umask


def test_round_trip_of_plain_module_with_biases(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = get_architecture("mnist-cnn").build().eval()
    path = save_model(module, tmp_path / "cnn.safetensors", arch="mnist-cnn")
    model, info = load_model(path)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(x), module(x))
    assert info["architecture"] == "mnist-cnn" and info["input_shape"] == [1, 28, 28]


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".ckpt"])
def test_pickle_files_are_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"not read")
    with pytest.raises(ValueError, match="spikecast never unpickles user files; convert"):
        load_model(path)


def test_missing_sidecar(saved: Path) -> None:
    sidecar_path(saved).unlink()
    with pytest.raises(ValueError, match=r"missing sidecar .*wine\.json"):
        load_model(saved)


def test_unknown_version(saved: Path) -> None:
    _edit_sidecar(saved, version=2)
    with pytest.raises(ValueError, match="format version 2; this spikecast reads versions 1"):
        load_model(saved)


def test_unknown_format(saved: Path) -> None:
    _edit_sidecar(saved, format="onnx")
    with pytest.raises(ValueError, match="format 'onnx', expected 'spikecast-model'"):
        load_model(saved)


def test_unknown_architecture(saved: Path) -> None:
    _edit_sidecar(saved, architecture="resnet18")
    with pytest.raises(ValueError, match="unknown architecture 'resnet18'; known: wine-fc"):
        load_model(saved)


def test_mis_shaped_tensor_names_tensor_and_both_shapes(saved: Path) -> None:
    save_file({"0.weight": torch.zeros(31, 13), "2.weight": torch.zeros(3, 30)}, str(saved))
    with pytest.raises(
        ValueError,
        match=r"tensor '0\.weight' has shape \(31, 13\), the architecture expects \(30, 13\)",
    ):
        load_model(saved)


def test_missing_and_extra_tensors_are_named(saved: Path) -> None:
    save_file({"0.weight": torch.zeros(30, 13), "0.bias": torch.zeros(30)}, str(saved))
    with pytest.raises(ValueError) as info:
        load_model(saved)
    assert "missing tensor(s) ['2.weight']" in str(info.value)
    assert "unexpected tensor(s) ['0.bias']" in str(info.value)


def test_truncated_file(saved: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"wine\.safetensors: corrupt or truncated safetensors"):
        load_model(saved)


def test_garbage_sidecar(saved: Path) -> None:
    sidecar_path(saved).write_text("{not json")
    with pytest.raises(ValueError, match="unreadable sidecar"):
        load_model(saved)


def test_save_rejects_wrong_suffix_reserved_keys_and_wrong_arch(
    tmp_path: Path, trained_wine: TrainedModel
) -> None:
    with pytest.raises(ValueError, match=r"must end in \.safetensors, got '\.pt'"):
        save_model(trained_wine, tmp_path / "m.pt", arch="wine-fc")
    with pytest.raises(ValueError, match=r"reserved key\(s\) \['version'\]"):
        save_model(
            trained_wine, tmp_path / "m.safetensors", arch="wine-fc", metadata={"version": 9}
        )
    with pytest.raises(ValueError, match="arch='mnist-fc' but the TrainedModel is a 'wine-fc'"):
        save_model(trained_wine, tmp_path / "m.safetensors", arch="mnist-fc")
    wider = nn.Sequential(nn.Linear(13, 31, bias=False), nn.ReLU(), nn.Linear(31, 3, bias=False))
    with pytest.raises(ValueError, match=r"tensor '0\.weight' has shape \(31, 13\), the arch"):
        save_model(wider, tmp_path / "m.safetensors", arch="wine-fc")
    assert list(tmp_path.iterdir()) == []


def test_unknown_pretrained_name_lists_available() -> None:
    with pytest.raises(
        ValueError, match="unknown pretrained model 'vgg'; available: mnist-fc, mnist-cnn"
    ):
        load_pretrained("vgg")


@pytest.mark.parametrize("kind", MNIST_KINDS)
@pytest.mark.parametrize(
    ("name", "claimed", "floor"), [("mnist-cnn", 0.99, 0.98), ("mnist-fc", 0.975, 0.96)]
)
def test_shipped_model_accuracy_is_recomputed(
    kind: str, name: str, claimed: float, floor: float
) -> None:
    mnist = load_mnist(kind)
    model, info = load_pretrained(name)
    assert name in PRETRAINED
    assert info["architecture"] == name and info["dataset"] == "mnist"
    assert info["test_accuracy"] >= claimed
    assert info["command"].startswith(f"python scripts/train_pretrained.py --arch {name} ")
    # Oracle: recompute on the first 1000 test images (200 in the subset: 100% for both)
    # instead of trusting the sidecar.
    assert evaluate_ann(model, mnist.x_test[:1000], mnist.y_test[:1000]) >= floor


def test_pretrained_loads_from_a_zipped_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Path(spikecast.zoo.pretrained.__file__).parent / "weights"
    archive = tmp_path / "spikecast.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for suffix in (".safetensors", ".json"):
            zf.write(source / f"mnist-fc{suffix}", f"spikecast/zoo/weights/mnist-fc{suffix}")
    zipped = zipfile.Path(archive, "spikecast/zoo/")
    monkeypatch.setattr(spikecast.zoo.pretrained.resources, "files", lambda package: zipped)
    model, info = load_pretrained("mnist-fc")
    reference, _ = load_model(source / "mnist-fc.safetensors")
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model(x), reference(x))
    assert info["architecture"] == "mnist-fc"
