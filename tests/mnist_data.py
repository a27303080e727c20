"""MNIST for the tests: the shipped 500-image subset, and the full dataset where present.

The default suite runs on ``tests/data/mnist-mini`` (no download, no network); tests of
the full dataset are marked :data:`requires_full_mnist` and skipped, with the reason, on a
machine without it (set ``SPIKECAST_DATA`` to the folder of the four official files).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spikecast.datasets.idx import IDX_FILES, find_idx_file
from spikecast.datasets.loaders import Dataset, load_dataset

MNIST_MINI = Path(__file__).resolve().parent / "data" / "mnist-mini"


def _full_mnist_dir() -> Path | None:
    root = os.environ.get("SPIKECAST_DATA")
    if not root:
        return None
    for folder in (Path(root), Path(root) / "mnist"):
        if all(find_idx_file(folder, stem) for stem in IDX_FILES):
            return folder
    return None


FULL_MNIST = _full_mnist_dir()
requires_full_mnist = pytest.mark.skipif(
    FULL_MNIST is None,
    reason="needs the full MNIST IDX files: set SPIKECAST_DATA to their folder (the default "
    "suite runs on the 300 + 200-image subset in tests/data/mnist-mini)",
)


def load_mnist(kind: str = "mini") -> Dataset:
    """``"mini"``: the shipped subset (300 train, 200 test); ``"full"``: the official files
    under ``SPIKECAST_DATA`` (never downloaded here)."""
    if kind == "mini":
        return load_dataset(f"idx:{MNIST_MINI}")
    if FULL_MNIST is None:
        raise FileNotFoundError("the full MNIST files are not present (see requires_full_mnist)")
    return load_dataset("mnist", FULL_MNIST, download=False)


MNIST_KINDS = ["mini", pytest.param("full", marks=requires_full_mnist)]
"""Parametrize a test over both: it always runs on the subset, and on the full data too
where present."""
