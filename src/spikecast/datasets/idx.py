"""Reader for the IDX binary format used by MNIST-style datasets.

An IDX file is a big-endian header (magic number, item count, then the size of each
further dimension) followed by raw ``uint8`` data. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from spikecast.errors import SpikecastError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


class DataError(SpikecastError):
    """A dataset is missing, malformed, corrupt or outside the accepted value range."""


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """Return ``folder/stem.gz`` or ``folder/stem`` (first that exists), else None."""
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def decompress(raw: bytes, source: str) -> bytes:
    """Gunzip ``raw`` if ``source`` ends in .gz or the bytes carry the gzip magic."""
    if not source.endswith(".gz") and raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{source}: corrupt gzip data ({exc})") from exc


def _dims(data: bytes, source: str, magic: int, n_dims: int) -> tuple[int, ...]:
    header_len = 4 * (1 + n_dims)
    if len(data) < header_len:
        raise DataError(
            f"{source}: truncated IDX file: expected at least {header_len} header bytes, "
            f"got {len(data)}"
        )
    found, *dims = struct.unpack_from(f">{1 + n_dims}I", data)
    if found != magic:
        raise DataError(f"{source}: bad IDX magic number {found} (expected {magic})")
    if 0 in dims:
        raise DataError(f"{source}: IDX header has an empty dimension {tuple(dims)}")
    expected = header_len + math.prod(dims)
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "oversized"
        raise DataError(
            f"{source}: {kind} IDX file: header {tuple(dims)} implies {expected} bytes, "
            f"got {len(data)}"
        )
    return tuple(dims)


def parse_idx_images(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode an uncompressed IDX3 image file into a read-only uint8 array (N, rows, cols)."""
    dims = _dims(data, source, IMAGES_MAGIC, 3)
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(dims)


def parse_idx_labels(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode an uncompressed IDX1 label file into a read-only uint8 array (N,)."""
    _dims(data, source, LABELS_MAGIC, 1)
    return np.frombuffer(data, dtype=np.uint8, offset=8)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def read_idx_dir(
    folder: str | Path, *, md5: Mapping[str, str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the four standard IDX files (``NAME`` or ``NAME.gz``) from ``folder``.

    Returns uint8 arrays ``(x_train, y_train, x_test, y_test)`` with images (N, rows, cols).
    ``md5`` maps file stems to the expected digest of their ``.gz`` form; a ``.gz`` file whose
    digest differs is refused before anything is decoded.
    """
    folder = Path(folder)
    paths = {stem: find_idx_file(folder, stem) for stem in IDX_FILES}
    missing = [stem for stem, path in paths.items() if path is None]
    if missing:
        raise DataError(
            f"{folder}: missing IDX file(s) {', '.join(missing)} (each as NAME or NAME.gz)"
        )
    raw = {stem: _read(path) for stem, path in paths.items()}
    for stem, path in paths.items():
        expected = (md5 or {}).get(stem)
        if expected and path.suffix == ".gz":
            actual = hashlib.md5(raw[stem], usedforsecurity=False).hexdigest()
            if actual != expected:
                raise DataError(
                    f"{path}: md5 mismatch (expected {expected}, got {actual}); "
                    "the file is corrupt or not the official one, delete it and fetch it again"
                )
    arrays = []
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        x = parse_idx_images(decompress(raw[images], str(paths[images])), str(paths[images]))
        y = parse_idx_labels(decompress(raw[labels], str(paths[labels])), str(paths[labels]))
        if len(x) != len(y):
            raise DataError(
                f"{paths[images]} holds {len(x)} images but {paths[labels]} holds {len(y)} labels"
            )
        arrays += [x, y]
    x_train, y_train, x_test, y_test = arrays
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{folder}: train images are {x_train.shape[1:]} but test images are {x_test.shape[1:]}"
        )
    return x_train, y_train, x_test, y_test
