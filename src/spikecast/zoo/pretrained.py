"""Reference MNIST models shipped with the package (``spikecast/zoo/weights/NAME.safetensors``)."""

from __future__ import annotations

import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from spikecast.io.annfile import load_model

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["PRETRAINED", "load_pretrained", "pretrained_path"]

PRETRAINED = ("mnist-fc", "mnist-cnn", "mnist-cnn-sd")
_SCRIPT = {"mnist-cnn-sd": "scripts/train_sigma_delta.py"}
_DEFAULT_SCRIPT = "scripts/train_pretrained.py --arch "
_FOLDER = "weights"


def _resource(name: str, suffix: str) -> Traversable:
    return resources.files("spikecast.zoo") / _FOLDER / f"{name}{suffix}"


def pretrained_path(name: str) -> Traversable:
    """The packaged weights file of ``name``; ``ValueError`` lists the available names."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; available: {', '.join(PRETRAINED)}")
    weights = _resource(name, ".safetensors")
    if not (weights.is_file() and _resource(name, ".json").is_file()):
        raise ValueError(
            f"pretrained model {name!r} is not installed (expected {weights} and its .json "
            f"sidecar); regenerate it with `python {_SCRIPT.get(name, _DEFAULT_SCRIPT + name)} ...`"
        )
    return weights


def load_pretrained(name: str) -> tuple[nn.Module, dict[str, Any]]:
    """Load a shipped reference model in eval mode with its sidecar metadata.

    ``name`` is one of :data:`PRETRAINED` (``mnist-cnn-sd``: mnist-cnn trained for the
    sigma-delta SNN by scripts/train_sigma_delta.py); the metadata records the architecture,
    dataset, seed, epochs, hyperparameters, test accuracy and the command that produced the weights.
    """
    weights = pretrained_path(name)
    if isinstance(weights, Path):
        return load_model(weights)
    with tempfile.TemporaryDirectory(prefix="spikecast-pretrained-") as tmp:
        for suffix in (".safetensors", ".json"):
            with (
                _resource(name, suffix).open("rb") as src,
                open(Path(tmp) / f"{name}{suffix}", "wb") as dst,
            ):
                shutil.copyfileobj(src, dst)
        return load_model(Path(tmp) / f"{name}.safetensors")
