"""Model files: weights as ``.safetensors`` plus a JSON sidecar naming the architecture.

``model.safetensors`` holds the state_dict tensors; ``model.json`` holds
``{"format": "spikecast-model", "version": 1, "architecture": ..., "dataset": ...,
"input_shape": ..., "preprocessing": ..., "seed": ..., "test_accuracy": ...,
"hyperparameters": ..., ...}``. Loading rebuilds the architecture from
:mod:`spikecast.zoo.models` and loads the tensors strictly. Any other architecture is stored
as its captured layer graph (:func:`save_network`: ``"architecture": "graph"``, the layers,
names and sources in ``"graph"``, the tensors named as in ``.spikecast`` files) and loads as
a trainable :class:`~spikecast.finetune.to_module.NetworkModule`. Pickle-based files are
never read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from spikecast.errors import SpikecastError
from spikecast.io.atomic import atomic_write, check_output, strict_json, write_text
from spikecast.io.schema import SIDECAR, check_fields, check_format
from spikecast.ir.graph import Network
from spikecast.zoo.models import get_architecture
from spikecast.zoo.train import TrainedModel

__all__ = [
    "FORMAT", "GRAPH", "PICKLE_SUFFIXES", "VERSION", "check_model_output", "load_model",
    "save_model", "save_network",
    "sidecar_path",
]

FORMAT = "spikecast-model"
VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".ckpt")
GRAPH = "graph"  # the architecture of a file that holds its own layer graph
_RESERVED = ("format", "version", "architecture", "graph")
_CONVERT_HINT = (
    "convert it once in a trusted Python session: "
    "`safetensors.torch.save_file({k: v.contiguous() for k, v in "
    "torch.load(PATH, weights_only=True).items()}, 'model.safetensors')` and write a sidecar "
    "with spikecast.io.annfile.save_model"
)


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a weights file: ``model.safetensors`` -> ``model.json``."""
    return Path(path).with_suffix(".json")


def check_model_output(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Refuse, before any work, a model path that is not ``*.safetensors`` or where the
    weights or the sidecar cannot be written (see :func:`~spikecast.io.atomic.check_output`)."""
    path = Path(path)
    if path.suffix != WEIGHTS_SUFFIX:
        raise SpikecastError(
            f"{path}: model files must end in {WEIGHTS_SUFFIX}, got {path.suffix!r}"
        )
    sources = list(inputs)
    check_output(path, sources)
    check_output(sidecar_path(path), sources)
    return path


def save_model(
    trained_or_module: TrainedModel | nn.Module,
    path: str | os.PathLike,
    *,
    arch: str,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``path`` (must end in .safetensors) and its JSON sidecar; return ``path``.

    A :class:`TrainedModel` contributes dataset, seed, epochs, accuracies, preprocessing and
    hyperparameters; ``metadata`` entries (e.g. ``"command"``) are added on top, but may not
    override the format fields. Both files are written atomically (temp file + rename).
    """
    path = check_model_output(path)
    architecture = get_architecture(arch)
    info: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": architecture.name,
        "input_shape": list(architecture.input_shape),
        "dataset": architecture.dataset,
        "torch_version": torch.__version__,
    }
    if isinstance(trained_or_module, TrainedModel):
        trained = trained_or_module
        if trained.arch != architecture.name:
            raise ValueError(
                f"arch={arch!r} but the TrainedModel is a {trained.arch!r}; "
                f"pass arch={trained.arch!r}"
            )
        module = trained.model
        info |= {
            "dataset": trained.dataset,
            "input_shape": list(trained.input_shape),
            "preprocessing": trained.preprocessing,
            "seed": trained.seed,
            "epochs": trained.epochs,
            "test_accuracy": trained.test_accuracy,
            "train_accuracy": trained.train_accuracy,
            "hyperparameters": dict(trained.hyperparameters),
        }
    elif isinstance(trained_or_module, nn.Module):
        module = trained_or_module
    else:
        raise ValueError(
            "save_model needs a TrainedModel or an nn.Module, got "
            f"{type(trained_or_module).__name__}"
        )
    info |= _metadata(metadata)
    _check_tensors(architecture.build().state_dict(), module.state_dict(), str(path))
    tensors = {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items()}
    return _write(path, tensors, info)


def _metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    extra = dict(metadata or {})
    clash = sorted(set(_RESERVED) & extra.keys())
    if clash:
        raise ValueError(f"metadata may not set the reserved key(s) {clash}")
    return extra


def _write(path: Path, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> Path:
    text = json.dumps(strict_json(info), indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": FORMAT}))
    write_text(sidecar_path(path), text)
    return path


def save_network(
    net: Network, path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write a captured layer graph of any architecture (weights in ``path``, the graph and
    ``metadata`` in the sidecar, which should name the ``"dataset"``); return ``path``."""
    from spikecast.io.snnfile import _layer_spec, _tensors

    path = Path(path)
    if path.suffix != WEIGHTS_SUFFIX:
        raise ValueError(f"{path}: model files must end in {WEIGHTS_SUFFIX}, got {path.suffix!r}")
    info: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": GRAPH,
        "input_shape": list(net.input_shape),
        "graph": {
            "names": list(net.names),
            "layers": [_layer_spec(layer) for layer in net.layers],
            "sources": [list(src) for src in net.sources],
        },
        "torch_version": torch.__version__,
    } | _metadata(metadata)
    tensors = {k: t.contiguous() for k, t in _tensors("ann", net).items()}
    return _write(path, tensors, info)


def _load_graph(path: Path, info: dict[str, Any], tensors: dict[str, torch.Tensor]) -> nn.Module:
    from spikecast.finetune.to_module import NetworkModule
    from spikecast.io.snnfile import _build

    graph = info.get("graph")
    if not isinstance(graph, dict) or not {"names", "layers"} <= graph.keys():
        raise ValueError(f"{sidecar_path(path)}: architecture {GRAPH!r} needs a 'graph' with "
                         "'names', 'layers' and 'sources'")
    try:
        net = _build("ann", graph | {"input_shape": info.get("input_shape")}, tensors, path)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{sidecar_path(path)}: malformed layer graph: {exc}") from None
    return NetworkModule(net).eval()


def _check_tensors(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], where: str
) -> None:
    """Raise ``ValueError`` naming missing, unexpected or mis-shaped tensors."""
    missing = sorted(expected.keys() - found.keys())
    extra = sorted(found.keys() - expected.keys())
    problems = []
    if missing:
        problems.append(f"missing tensor(s) {missing}")
    if extra:
        problems.append(f"unexpected tensor(s) {extra}")
    for name in sorted(expected.keys() & found.keys()):
        want, got = tuple(expected[name].shape), tuple(found[name].shape)
        if want != got:
            problems.append(f"tensor {name!r} has shape {got}, the architecture expects {want}")
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))


def _read_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if not side.is_file():
        raise ValueError(
            f"{path}: missing sidecar {side} (a JSON file naming the architecture; "
            "write both with spikecast.io.annfile.save_model)"
        )
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{side}: unreadable sidecar: {exc}") from exc
    check_format(info, str(side), FORMAT, (VERSION,), "a spikecast model sidecar")
    return check_fields(info, SIDECAR, str(side))


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the sidecar's architecture, load ``path``'s tensors strictly; return (model, info).

    The model is returned in eval mode. Every problem raises ``ValueError`` naming the file.
    """
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(
            f"{path}: {path.suffix} files are pickles and spikecast never unpickles user files; "
            + _CONVERT_HINT
        )
    if path.suffix != WEIGHTS_SUFFIX:
        raise ValueError(f"{path}: expected a {WEIGHTS_SUFFIX} file, got suffix {path.suffix!r}")
    if not path.is_file():
        raise ValueError(f"{path}: no such model file")
    info = _read_sidecar(path)
    if info.get("architecture") != GRAPH:
        try:
            architecture = get_architecture(str(info.get("architecture")))
        except ValueError as exc:
            raise ValueError(f"{sidecar_path(path)}: {exc} (or {GRAPH!r})") from None
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: corrupt or truncated safetensors file: {exc}") from exc
    if info.get("architecture") == GRAPH:
        return _load_graph(path, info, tensors), info
    model = architecture.build()
    _check_tensors(model.state_dict(), tensors, str(path))
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, info
