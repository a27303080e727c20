"""The public face: ``spikecast.convert``, ``spikecast.load`` and ``spikecast.as_network``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikecast.ir.graph import Network
from spikecast.schemes.base import Recipe, SpikingModel
from spikecast.schemes.convert import convert as convert_network
from spikecast.schemes.registry import get_recipe

ModelLike = nn.Module | Network | str | Path
MODEL_FILES = (".safetensors", ".onnx", ".nir")


def as_network(model: ModelLike, input_shape: tuple[int, ...] | None = None) -> Network:
    """The captured layer graph of ``model``: a PyTorch module (traced with the per-sample
    ``input_shape``), a :class:`Network`, or a path to a ``.safetensors`` ANN (with its JSON
    sidecar), an ``.onnx`` file or a ``.nir`` graph (its IF populations read as ReLUs)."""
    if isinstance(model, Network):
        return model
    if isinstance(model, nn.Module):
        if input_shape is None:
            raise ValueError("a PyTorch module needs input_shape (or calib_x) to be traced")
        from spikecast.frontends.torch_fx import capture

        return capture(model, tuple(input_shape))
    path = Path(model)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from spikecast.frontends.torch_fx import capture
        from spikecast.io.annfile import load_model
        from spikecast.zoo.models import get_architecture

        module, info = load_model(path)
        shape = input_shape or info.get("input_shape") or get_architecture(
            info["architecture"]).input_shape
        return capture(module, tuple(shape))
    if suffix == ".onnx":
        from spikecast.frontends.onnx.reader import load_onnx

        return load_onnx(path, None if input_shape is None else tuple(input_shape))
    if suffix == ".nir":
        from spikecast.io.nir import read_nir

        return read_nir(path).ann
    raise ValueError(
        f"{path}: cannot read a model from {suffix or 'a file without suffix'!r}; "
        f"allowed: a torch.nn.Module, a Network, or a {', '.join(MODEL_FILES)} file"
    )


def convert(
    model: ModelLike,
    scheme: str | Recipe,
    calib_x: torch.Tensor | None = None,
    *,
    input_shape: tuple[int, ...] | None = None,
    **params: Any,
) -> SpikingModel:
    """Convert ``model`` (see :func:`as_network`) with ``scheme`` (a registered name plus
    its ``params``, or a recipe), calibrating on ``calib_x`` (samples in [0, 1]).

    ``spikecast.convert(model, "rate", calib_x=x, steps=32)``; the user's model is never
    modified."""
    if isinstance(scheme, Recipe):
        if params:
            raise ValueError("pass parameters either in the recipe or as keywords, not both")
        recipe = scheme
    else:
        recipe = get_recipe(scheme, **params)
    if input_shape is None and calib_x is not None:
        input_shape = tuple(calib_x.shape[1:])
    return convert_network(as_network(model, input_shape), recipe, calib_x)


def load(path: str | Path) -> SpikingModel:
    """A converted network saved with ``snn.save(path)`` (``.spikecast``), or a NIR graph
    (``.nir``, simulated as a rate-coded network)."""
    path = Path(path)
    if path.suffix.lower() == ".nir":
        from spikecast.io.nir import read_nir

        return read_nir(path)
    from spikecast.io.snnfile import load_network

    return load_network(path)
