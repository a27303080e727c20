"""Datasets: built-in wine, digits and MNIST, plus user IDX folders and .npz archives.

Every loader returns a :class:`Dataset` with float32 inputs in [0, 1] and int64 labels.
Every bad input (unknown name, missing or corrupt file, out-of-range values) raises
:class:`DataError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikecast.datasets.download import DownloadError, fetch
from spikecast.datasets.idx import IDX_FILES, DataError, find_idx_file, read_idx_dir

__all__ = [
    "DATASET_NAMES",
    "MNIST_MD5",
    "MNIST_MIRRORS",
    "DataError",
    "Dataset",
    "load_dataset",
]

DATASET_NAMES = ("wine", "digits", "mnist")

MNIST_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_ACCEPTED = (
    "'wine', 'digits', 'mnist', 'idx:PATH' (folder with the four MNIST-named IDX files), "
    "'npz:PATH' or a path ending in .npz (keys x_train, y_train, x_test, y_test)"
)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split: inputs float32 in [0, 1] shaped (N, *sample_shape), labels int64."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    preprocessing: str

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != torch.float32 or y.dtype != torch.int64:
                raise DataError(
                    f"x_{split}/y_{split} must be float32/int64, got {x.dtype}/{y.dtype}"
                )
            if x.ndim < 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
                raise DataError(
                    f"x_{split} {tuple(x.shape)} and y_{split} {tuple(y.shape)} must hold the "
                    "same non-zero number of samples, x as (N, *sample_shape) and y as (N,)"
                )
            if y.min() < 0 or y.max() >= self.n_classes:
                raise DataError(
                    f"y_{split} spans [{int(y.min())}, {int(y.max())}], outside "
                    f"[0, {self.n_classes}) for n_classes={self.n_classes}"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"train samples are {tuple(self.x_train.shape[1:])} but test samples are "
                f"{tuple(self.x_test.shape[1:])}"
            )

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one input sample, e.g. ``(13,)`` or ``(1, 28, 28)``."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
            f"sample_shape={self.sample_shape}, n_classes={self.n_classes})"
        )


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    download: bool = True,
) -> Dataset:
    """Load a dataset by name.

    - ``wine``: sklearn's 178 x 13 wine data, per-feature min-max scaled to [0, 1]. Following
      the SSNN paper protocol, train and test are both all 178 samples (the test set is the
      training set).
    - ``digits``: sklearn's 8x8 digits, pixels / 16, shape (1, 8, 8), stratified 80/20 split
      drawn with ``seed``.
    - ``mnist``: the official 60000/10000 split, pixels / 255, shape (1, 28, 28). The four
      IDX files (raw or .gz) are searched in ``data_dir``, ``$SPIKECAST_DATA`` (each itself and
      its ``mnist`` subfolder), then ``$XDG_CACHE_HOME/spikecast/mnist`` (default
      ``~/.cache/spikecast/mnist``); if absent and ``download`` is true they are downloaded
      into that cache. Official .gz files are MD5-checked.
    - ``idx:PATH``: a folder with the four MNIST-named IDX files; images become (1, H, W) / 255
      and ``n_classes`` is the largest label + 1.
    - ``npz:PATH`` or ``PATH.npz``: arrays ``x_train, y_train, x_test, y_test``; uint8 inputs
      are divided by 255, float inputs must already lie in [0, 1]; sample shape is kept.
    """
    if data_dir is not None and Path(data_dir).expanduser().is_file():
        raise DataError(f"data_dir {data_dir}: is a file; give the folder holding the data")
    if name.startswith(("idx:", "npz:")):
        kind, path = name[:3], name[4:]
        if not path:
            raise DataError(f"{name!r}: missing path after '{kind}:'; accepted: {_ACCEPTED}")
        loader = _load_idx if kind == "idx" else _load_npz
        return loader(Path(path).expanduser())
    if name.endswith(".npz"):
        return _load_npz(Path(name).expanduser())
    key = name.lower()
    if key == "wine":
        return _load_wine()
    if key == "digits":
        return _load_digits(seed)
    if key == "mnist":
        return _load_mnist(data_dir, download)
    raise DataError(f"unknown dataset {name!r}; accepted: {_ACCEPTED}")


def _make(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    preprocessing: str,
) -> Dataset:
    def inputs(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))

    return Dataset(
        name,
        inputs(x_train),
        labels(y_train),
        inputs(x_test),
        labels(y_test),
        n_classes,
        preprocessing,
    )


def _load_wine() -> Dataset:
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    lo, hi = x.min(axis=0), x.max(axis=0)
    x = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    return _make(
        "wine",
        x,
        y,
        x.copy(),
        y.copy(),
        3,
        f"per-feature min-max to [0,1] (fit on all {len(x)} samples); paper protocol: "
        "the test set is the training set",
    )


def _load_digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).reshape(-1, 1, 8, 8)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=seed
    )
    return _make(
        "digits",
        x_train,
        y_train,
        x_test,
        y_test,
        10,
        f"pixels / 16 to [0,1]; stratified 80/20 train/test split (seed={seed})",
    )


def _pixels(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) / 255."""
    return np.divide(images[:, None], np.float32(255), dtype=np.float32)


def _idx_dataset(
    name: str, folder: Path, md5: dict[str, str] | None, preprocessing: str
) -> Dataset:
    x_train, y_train, x_test, y_test = read_idx_dir(folder, md5=md5)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    return _make(name, _pixels(x_train), y_train, _pixels(x_test), y_test, n_classes, preprocessing)


def _load_idx(folder: Path) -> Dataset:
    if not folder.is_dir():
        raise DataError(f"idx:{folder}: not a directory (expected a folder with {IDX_FILES})")
    return _idx_dataset(
        f"idx:{folder}", folder, None, "pixels / 255 to [0,1]; train/test split as in the files"
    )


def _cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "spikecast" / "mnist"


def _mnist_search_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    roots = [Path(data_dir).expanduser()] if data_dir is not None else []
    if os.environ.get("SPIKECAST_DATA"):
        roots.append(Path(os.environ["SPIKECAST_DATA"]).expanduser())
    dirs = [d for root in roots for d in (root, root / "mnist")] + [_cache_dir()]
    return list(dict.fromkeys(dirs))


def _load_mnist(data_dir: str | os.PathLike | None, download: bool) -> Dataset:
    preprocessing = "pixels / 255 to [0,1]; official 60000/10000 train/test split"
    searched = _mnist_search_dirs(data_dir)
    for folder in searched:
        if all(find_idx_file(folder, stem) for stem in IDX_FILES):
            return _idx_dataset("mnist", folder, MNIST_MD5, preprocessing)
    problem = "Download disabled (download=False)."
    if download:
        failures = _download_mnist(_cache_dir())
        if not failures:
            return _idx_dataset("mnist", _cache_dir(), MNIST_MD5, preprocessing)
        problem = "Download failed:\n  " + "\n  ".join(failures)
    files = ", ".join(f"{stem}.gz" for stem in IDX_FILES)
    raise DataError(
        "MNIST not found. Searched:\n  "
        + "\n  ".join(map(str, searched))
        + f"\nfor the files {', '.join(IDX_FILES)} (each raw or .gz).\n"
        + problem
        + f"\nTo install them by hand, download {files} from {MNIST_MIRRORS[0]} (or "
        f"{MNIST_MIRRORS[1]}) into {_cache_dir()}, or put them in any folder and pass it as "
        "--data-dir or set SPIKECAST_DATA to it."
    )


def _download_mnist(cache: Path) -> list[str]:
    """Fetch the missing official .gz files into ``cache`` (resuming partial ones, MD5
    checked); return the failure reasons (empty: every file is there)."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [f"cannot create {cache}: {exc}"]
    for stem in IDX_FILES:
        if find_idx_file(cache, stem) is not None:
            continue
        failures = []
        for mirror in MNIST_MIRRORS:
            try:
                fetch(mirror + f"{stem}.gz", cache / f"{stem}.gz", MNIST_MD5[stem])
                break
            except DownloadError as exc:
                failures.append(str(exc))
        else:
            return failures
    return []


def _check_finite(key: str, a: np.ndarray) -> None:
    n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    if n_nan or n_inf:
        raise DataError(f"{key}: {n_nan} NaN and {n_inf} inf values out of {a.size}")


def _npz_inputs(key: str, x: np.ndarray) -> tuple[np.ndarray, str]:
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{key}: shape {x.shape}; inputs must be (N, *sample_shape) with N > 0")
    if x.dtype == np.uint8:
        return np.divide(x, np.float32(255), dtype=np.float32), "uint8 pixels / 255"
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{key}: dtype {x.dtype}; inputs must be uint8 or float in [0, 1]")
    _check_finite(key, x)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise DataError(
            f"{key}: values range over [{lo:g}, {hi:g}]; inputs must be in [0, 1] "
            "(rescale them, or store uint8 pixels)"
        )
    return x, "float inputs used as given (already in [0,1])"


def _npz_labels(key: str, y: np.ndarray) -> np.ndarray:
    if np.issubdtype(y.dtype, np.floating):
        _check_finite(key, y)
        if not np.array_equal(y, np.round(y)):
            raise DataError(f"{key}: float labels must hold whole numbers")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{key}: dtype {y.dtype}; labels must be integers")
    if y.ndim != 1:
        raise DataError(f"{key}: shape {y.shape}; labels must be 1-D")
    if y.size and y.min() < 0:
        raise DataError(f"{key}: negative label {y.min()}; labels must be 0..n_classes-1")
    return y.astype(np.int64)


def _load_npz(path: Path) -> Dataset:
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile and numpy raise many types on damaged archives
        raise DataError(f"cannot read {path}: {exc}") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single array, expected an .npz archive with {_NPZ_KEYS}")
    with archive:
        missing = [key for key in _NPZ_KEYS if key not in archive.files]
        if missing:
            raise DataError(
                f"{path}: missing key(s) {', '.join(missing)}; found {archive.files}, "
                f"expected {', '.join(_NPZ_KEYS)}"
            )
        try:
            arrays = {key: archive[key] for key in _NPZ_KEYS}
        except Exception as exc:  # e.g. NotImplementedError for an unknown zip compression
            raise DataError(f"{path}: cannot read arrays: {exc}") from exc
    x_train, how_train = _npz_inputs("x_train", arrays["x_train"])
    x_test, how_test = _npz_inputs("x_test", arrays["x_test"])
    y_train = _npz_labels("y_train", arrays["y_train"])
    y_test = _npz_labels("y_test", arrays["y_test"])
    n_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    how = how_train if how_train == how_test else f"x_train: {how_train}; x_test: {how_test}"
    return _make(f"npz:{path}", x_train, y_train, x_test, y_test, n_classes, how)
