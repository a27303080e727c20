"""Where the command line finds an ANN: a shipped pretrained name, a ``.safetensors`` file
with its JSON sidecar, an ``.onnx`` file, or the user's own class with its weights.

``--model-class pkg.module:Class`` (or ``path/to/file.py:Class``) builds ``Class(**kwargs)``
(``--model-kwargs`` is a JSON object) and loads a state_dict from ``.safetensors`` or from a
``.pt``/``.pth`` file read with ``torch.load(..., weights_only=True)``, which refuses
anything but tensors and plain containers: no user code is unpickled. The current folder is
importable, as with ``python -m``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from torch import nn

from spikecast.io.annfile import PICKLE_SUFFIXES, load_model
from spikecast.zoo.pretrained import PRETRAINED, load_pretrained

ANN_SUFFIXES = (".safetensors", ".onnx", *PICKLE_SUFFIXES)
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")


def is_ann(spec: str | Path, model_class: str | None = None) -> bool:
    """Whether ``spec`` names an ANN (rather than a converted network or a NIR graph)."""
    return (model_class is not None or str(spec) in PRETRAINED
            or Path(spec).suffix.lower() in ANN_SUFFIXES)


def import_class(spec: str) -> type[nn.Module]:
    """``pkg.module:Class`` or ``path/to/file.py:Class`` -> the class (an nn.Module)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--model-class expects MODULE:CLASS (e.g. mypkg.nets:Net or "
                         f"nets.py:Net), got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ValueError(f"--model-class {spec!r}: no such file {path}")
            loader = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            if str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--model-class {spec!r}: cannot import {module_name!r}: {exc}") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"--model-class {spec!r}: {module_name!r} has no torch.nn.Module "
                         f"subclass named {attr!r}")
    return cls


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """``--model-kwargs``: a JSON object (default: no arguments)."""
    if not text:
        return {}
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--model-kwargs must be a JSON object, e.g. '{{\"width\": 64}}': "
                         f"{exc}") from exc
    if not isinstance(kwargs, dict):
        raise ValueError(f"--model-kwargs must be a JSON object, got {type(kwargs).__name__}")
    return kwargs


def _tensors(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, dict) and obj and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        return obj
    return None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``.pt``/``.pth`` state_dict (also under a
    checkpoint's ``state_dict``/``model_state_dict``/``model`` key), never unpickling code."""
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"{path}: corrupt or truncated safetensors file: {exc}") from exc
    if path.suffix.lower() not in PICKLE_SUFFIXES:
        raise ValueError(f"{path}: weights must be .safetensors or a torch state_dict "
                         f"({', '.join(PICKLE_SUFFIXES)}), got {path.suffix!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(
            f"{path}: not a plain state_dict (torch.load with weights_only=True refused it: "
            f"{str(exc).splitlines()[0]}); save model.state_dict(), not the model object"
        ) from exc
    found = _tensors(obj)
    for key in STATE_DICT_KEYS:
        if found is None and isinstance(obj, dict):
            found = _tensors(obj.get(key))
    if found is None:
        raise ValueError(f"{path}: holds no state_dict (a dict of tensor names to tensors, "
                         f"directly or under {list(STATE_DICT_KEYS)})")
    return found


def build_user_model(model_class: str, kwargs_text: str | None, weights: Path) -> nn.Module:
    """``Class(**kwargs)`` with ``weights`` loaded strictly, in eval mode."""
    cls = import_class(model_class)
    kwargs = parse_kwargs(kwargs_text)
    try:
        model = cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{model_class}({', '.join(kwargs)}): {exc}; pass the constructor's "
                         "arguments with --model-kwargs JSON") from exc
    state = read_state_dict(weights)
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{weights} does not fit {model_class}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, shapes (file vs model) {shapes[:5]}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_module(
    spec: str | Path, model_class: str | None = None, model_kwargs: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """A PyTorch ANN and its metadata (``dataset`` when known) from a pretrained name, a
    .safetensors file with sidecar, or ``--model-class`` with weights."""
    name = str(spec)
    path = Path(spec)
    if model_class is not None:
        return build_user_model(model_class, model_kwargs, path), {"source": name}
    if model_kwargs:
        raise ValueError("--model-kwargs needs --model-class")
    if name in PRETRAINED and not path.exists():
        return load_pretrained(name)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(
            f"{path}: {path.suffix} files are pickles; spikecast reads them as a state_dict "
            "(torch.load with weights_only=True) for your own architecture: pass "
            "--model-class pkg.module:Class (and --model-kwargs JSON if it takes arguments)"
        )
    if path.suffix == ".safetensors" and not path.with_suffix(".json").is_file():
        raise ValueError(
            f"{path}: no JSON sidecar naming a spikecast architecture; for your own "
            "architecture pass --model-class pkg.module:Class (and --dataset)"
        )
    if path.suffix != ".safetensors":
        raise ValueError(
            f"{name!r} is not a model: pass a pretrained name ({', '.join(PRETRAINED)}), a "
            ".safetensors file with its JSON sidecar, an .onnx file, or weights with "
            "--model-class"
        )
    return load_model(path)


ModelClassOpt = Annotated[
    str | None,
    typer.Option(help="Your own nn.Module: pkg.module:Class or file.py:Class; the model "
                 "argument is then its weights (.safetensors, or a .pt state_dict read with "
                 "weights_only=True). Needs --dataset."),
]
ModelKwargsOpt = Annotated[
    str | None, typer.Option(help="JSON object of --model-class constructor arguments.")
]
