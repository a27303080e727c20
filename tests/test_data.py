"""Tests for dataset loading, IDX parsing and the MNIST download."""

from __future__ import annotations

import gzip
import hashlib
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mnist_data import MNIST_MINI, load_mnist, requires_full_mnist

from spikecast.datasets.idx import IDX_FILES, parse_idx_images, parse_idx_labels
from spikecast.datasets.loaders import DATASET_NAMES, MNIST_MD5, DataError, Dataset, load_dataset


def _idx_images(images: np.ndarray, magic: int = 2051) -> bytes:
    return struct.pack(">IIII", magic, *images.shape) + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray, magic: int = 2049) -> bytes:
    return struct.pack(">II", magic, len(labels)) + labels.astype(np.uint8).tobytes()


def _write_idx_dir(folder: Path, files: dict[str, bytes], gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in files.items():
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return folder


def _tiny_idx(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "x_train": rng.integers(0, 256, (5, 3, 4)),
        "y_train": np.array([0, 4, 2, 1, 0]),
        "x_test": rng.integers(0, 256, (2, 3, 4)),
        "y_test": np.array([3, 1]),
    }


def _tiny_idx_files(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    return dict(
        zip(
            IDX_FILES,
            (
                _idx_images(arrays["x_train"]),
                _idx_labels(arrays["y_train"]),
                _idx_images(arrays["x_test"]),
                _idx_labels(arrays["y_test"]),
            ),
            strict=True,
        )
    )


@pytest.fixture
def no_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No SPIKECAST_DATA and an empty cache under tmp_path; returns the cache dir."""
    monkeypatch.delenv("SPIKECAST_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "spikecast" / "mnist"


def _check_tensors(ds: Dataset) -> None:
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.dtype == torch.float32 and x.is_contiguous()
        assert y.dtype == torch.int64 and y.ndim == 1 and len(x) == len(y)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert y.min() >= 0 and y.max() < ds.n_classes
        assert tuple(x.shape[1:]) == ds.sample_shape


def test_names_constant() -> None:
    assert DATASET_NAMES == ("wine", "digits", "mnist")


def test_wine() -> None:
    ds = load_dataset("wine")
    _check_tensors(ds)
    assert ds.sample_shape == (13,) and ds.n_classes == 3
    assert len(ds.x_train) == len(ds.x_test) == 178
    assert torch.equal(ds.x_train, ds.x_test) and torch.equal(ds.y_train, ds.y_test)
    assert torch.equal(ds.x_train.amin(0), torch.zeros(13))
    assert torch.equal(ds.x_train.amax(0), torch.ones(13))
    assert set(ds.y_test.tolist()) == {0, 1, 2}
    assert "178" in ds.preprocessing


def test_digits_split_is_stratified_and_seeded() -> None:
    ds = load_dataset("digits", seed=3)
    _check_tensors(ds)
    assert ds.sample_shape == (1, 8, 8) and ds.n_classes == 10
    assert (len(ds.x_train), len(ds.x_test)) == (1437, 360)
    assert ds.x_train.max() == 1.0
    train_frac = torch.bincount(ds.y_train, minlength=10) / len(ds.y_train)
    test_frac = torch.bincount(ds.y_test, minlength=10) / len(ds.y_test)
    assert torch.allclose(train_frac, test_frac, atol=0.01)
    again = load_dataset("digits", seed=3)
    assert torch.equal(again.x_test, ds.x_test) and torch.equal(again.y_test, ds.y_test)
    other = load_dataset("digits", seed=4)
    assert not torch.equal(other.x_test, ds.x_test)


@requires_full_mnist
def test_mnist() -> None:
    mnist = load_mnist("full")
    _check_tensors(mnist)
    assert (len(mnist.x_train), len(mnist.x_test)) == (60000, 10000)
    assert mnist.sample_shape == (1, 28, 28) and mnist.n_classes == 10
    assert mnist.y_test[0] == 7
    assert mnist.x_train.min() == 0.0 and mnist.x_train.max() == 1.0
    assert "Dataset(name='mnist', train=60000" in repr(mnist)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    arrays = _tiny_idx(np.random.default_rng(0))
    folder = _write_idx_dir(tmp_path / "tiny", _tiny_idx_files(arrays), gz=gz)
    ds = load_dataset(f"idx:{folder}")
    _check_tensors(ds)
    assert ds.sample_shape == (1, 3, 4) and ds.n_classes == 5
    expected = torch.tensor(arrays["x_train"], dtype=torch.float32)[:, None] / 255
    assert torch.equal(ds.x_train, expected)
    assert torch.equal(
        ds.x_test, torch.tensor(arrays["x_test"], dtype=torch.float32)[:, None] / 255
    )
    assert ds.y_train.tolist() == [0, 4, 2, 1, 0] and ds.y_test.tolist() == [3, 1]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), rows=st.integers(1, 6), cols=st.integers(1, 6), seed=st.integers(0, 99))
def test_idx_parsers_property(n: int, rows: int, cols: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    images, labels = rng.integers(0, 256, (n, rows, cols)), rng.integers(0, 256, n)
    assert np.array_equal(parse_idx_images(_idx_images(images)), images)
    assert np.array_equal(parse_idx_labels(_idx_labels(labels)), labels)
    with pytest.raises(DataError, match="truncated"):
        parse_idx_images(_idx_images(images)[:-1])


def _broken_idx_dir(tmp_path: Path, stem: str, data: bytes, gz: bool = False) -> Path:
    files = _tiny_idx_files(_tiny_idx(np.random.default_rng(1)))
    folder = _write_idx_dir(tmp_path / "broken", files)
    (folder / stem).unlink()
    (folder / (f"{stem}.gz" if gz else stem)).write_bytes(data)
    return folder


def test_idx_wrong_magic(tmp_path: Path) -> None:
    data = _idx_images(np.zeros((2, 3, 3)), magic=2049)
    folder = _broken_idx_dir(tmp_path, "t10k-images-idx3-ubyte", data)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: bad IDX magic.*2049.*2051"):
        load_dataset(f"idx:{folder}")


def test_idx_truncated(tmp_path: Path) -> None:
    data = _idx_images(np.zeros((5, 3, 4)))[:-7]  # header says 16 + 60 bytes
    folder = _broken_idx_dir(tmp_path, "train-images-idx3-ubyte", data)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated.* 76 bytes, got 69"):
        load_dataset(f"idx:{folder}")


def test_idx_gzip_garbage(tmp_path: Path) -> None:
    folder = _broken_idx_dir(tmp_path, "train-labels-idx1-ubyte", b"\x1f\x8bnot gzip", gz=True)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: corrupt gzip"):
        load_dataset(f"idx:{folder}")


def test_idx_count_mismatch(tmp_path: Path) -> None:
    folder = _broken_idx_dir(tmp_path, "t10k-labels-idx1-ubyte", _idx_labels(np.array([1])))
    with pytest.raises(DataError, match=r"holds 2 images but .* holds 1 labels"):
        load_dataset(f"idx:{folder}")


def test_idx_missing_file(tmp_path: Path) -> None:
    files = _tiny_idx_files(_tiny_idx(np.random.default_rng(2)))
    folder = _write_idx_dir(tmp_path / "partial", files)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"missing IDX file.*t10k-labels-idx1-ubyte"):
        load_dataset(f"idx:{folder}")
    with pytest.raises(DataError, match="not a directory"):
        load_dataset(f"idx:{tmp_path / 'nowhere'}")


def test_mnist_mini_subset() -> None:
    ds = load_mnist("mini")
    _check_tensors(ds)
    assert (len(ds.x_train), len(ds.x_test)) == (300, 200)
    assert ds.sample_shape == (1, 28, 28) and ds.n_classes == 10
    assert ds.y_test[0] == 7 and ds.y_train[0] == 5  # the official files' first labels
    assert set(ds.y_train.tolist()) == set(range(10))


def test_mnist_md5_mismatch(tmp_path: Path) -> None:
    """Files under the official names whose digest is not the official one are refused
    (the subset's files are such files)."""
    for stem in IDX_FILES:
        (tmp_path / f"{stem}.gz").symlink_to(MNIST_MINI / f"{stem}.gz")
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=tmp_path)
    msg = str(err.value)
    first = IDX_FILES[0]
    actual = hashlib.md5((MNIST_MINI / f"{first}.gz").read_bytes()).hexdigest()
    assert str(tmp_path / f"{first}.gz") in msg and MNIST_MD5[first] in msg and actual in msg


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DataError, match=r"data_dir .*afile: is a file"):
        load_dataset("mnist", data_dir=afile)


def _npz(tmp_path: Path, **overrides: np.ndarray | None) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.random((6, 2, 5)),
        "y_train": np.array([0, 1, 2, 0, 1, 2]),
        "x_test": rng.random((3, 2, 5)),
        "y_test": np.array([2, 1, 0]),
    }
    arrays.update(overrides)
    path = tmp_path / "data.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_npz_float_and_uint8(tmp_path: Path) -> None:
    path = _npz(tmp_path)
    for name in (str(path), f"npz:{path}"):
        ds = load_dataset(name)
        _check_tensors(ds)
        assert ds.sample_shape == (2, 5) and ds.n_classes == 3
        assert torch.equal(ds.x_test, torch.from_numpy(np.load(path)["x_test"]).float())
    pixels = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4) * 10
    ds = load_dataset(str(_npz(tmp_path, x_train=pixels, x_test=pixels[:3])))
    assert torch.equal(ds.x_train, torch.from_numpy(pixels).float() / 255)
    assert ds.sample_shape == (4,) and "255" in ds.preprocessing


def test_npz_nan(tmp_path: Path) -> None:
    x = np.full((6, 2, 5), 0.5)
    x[0, 0, :2] = np.nan
    with pytest.raises(DataError, match=r"x_train: 2 NaN and 0 inf"):
        load_dataset(str(_npz(tmp_path, x_train=x)))


def test_npz_out_of_range(tmp_path: Path) -> None:
    x = np.full((3, 2, 5), 0.25)
    x[1, 1, 1] = 1.5
    with pytest.raises(DataError, match=r"x_test: values range over \[0.25, 1.5\].*\[0, 1\]"):
        load_dataset(str(_npz(tmp_path, x_test=x)))


def test_npz_missing_key(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing key.*y_test"):
        load_dataset(str(_npz(tmp_path, y_test=None)))


def test_npz_bad_file_and_shapes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")
    with pytest.raises(DataError, match=r"x_train \(6, 2, 5\) and y_train \(2,\)"):
        load_dataset(str(_npz(tmp_path, y_train=np.array([0, 1]))))
    with pytest.raises(DataError, match="y_test: negative label"):
        load_dataset(str(_npz(tmp_path, y_test=np.array([0, -1, 2]))))
    with pytest.raises(DataError, match="train samples are"):
        load_dataset(str(_npz(tmp_path, x_test=np.zeros((3, 10)))))


def test_unknown_name() -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'cifar'.*wine.*digits.*mnist.*idx:.*npz"):
        load_dataset("cifar")


def _assert_not_found(msg: str, dirs: list[Path]) -> None:
    for folder in dirs:
        assert str(folder) in msg
    for stem in IDX_FILES:
        assert stem in msg
    assert "SPIKECAST_DATA" in msg


def test_mnist_missing_no_download(tmp_path: Path, no_data: Path) -> None:
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=tmp_path / "empty", download=False)
    msg = str(err.value)
    _assert_not_found(msg, [tmp_path / "empty", tmp_path / "empty" / "mnist", no_data])
    assert "download=False" in msg


def test_mnist_offline(tmp_path: Path, no_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=tmp_path / "empty")
    msg = str(err.value)
    _assert_not_found(msg, [tmp_path / "empty", no_data])
    assert "network is unreachable" in msg
    assert not [p for p in no_data.iterdir() if p.is_file()]
