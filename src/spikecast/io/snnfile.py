"""Save and load converted networks: one safetensors file, graph and scheme in its metadata.

Layout (version 3): tensors ``ann.{i}.weight`` / ``ann.{i}.bias`` / ``ann.{i}.weights``
(the captured ANN, BN folded); metadata key ``spikecast`` holds JSON with ``format``,
``version``, ``scheme``, ``params`` (the recipe's), ``calibration`` (the recipe's frozen
calibration record), ``input_shape``, ``layers`` (type and hyper-parameters per layer),
``names``, ``sources`` and free-form ``info``. Loading rebuilds the model with
``recipe.build(ann, calibration)``, a pure function, so it is identical to the saved one.
Versions 1-2 stored the normalized network and its ``scales`` instead of a calibration; they
still load (:meth:`~spikecast.schemes.base.Recipe.legacy_calibration`). No pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from spikecast.checks import require_finite_tensors
from spikecast.io.atomic import atomic_write, strict_json
from spikecast.io.schema import check_snn_meta
from spikecast.ir.graph import (
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    Network,
    ReLU,
)

if TYPE_CHECKING:
    from spikecast.schemes.base import SpikingModel

FORMAT = "spikecast-snn"
VERSION = 3  # 2: graphs with branches (Add / Concat, "sources"); 3: "calibration"
READABLE_VERSIONS = (1, 2, 3)
_POOLS = {"AvgPool2d": AvgPool2d, "MaxPool2d": MaxPool2d}
_MERGES = {"Add": Add, "Concat": Concat}


@dataclass
class ConvertedFile:
    """What a converted-network file holds: ``calibration`` is the recipe's record
    (``Calibration.to_dict()``); files of versions 1-2 have ``legacy_scales`` instead."""

    scheme: str
    params: dict[str, Any]
    ann: Network
    calibration: dict[str, Any] | None
    info: dict[str, Any] = field(default_factory=dict)
    legacy_scales: tuple[float, ...] | None = None


def _json_value(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    return v


def _layer_spec(layer: Layer) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type(layer).__name__}
    if isinstance(layer, Conv2d):
        spec |= {"stride": list(layer.stride), "padding": list(layer.padding),
                 "groups": layer.groups}
    if isinstance(layer, (AvgPool2d, MaxPool2d)):
        spec |= {
            "kernel_size": list(layer.kernel_size),
            "stride": list(layer.stride),
            "padding": list(layer.padding),
        }
    return spec


def _tensors(prefix: str, net: Network) -> dict[str, torch.Tensor]:
    out = {}
    for i, layer in enumerate(net.layers):
        if isinstance(layer, (Linear, Conv2d)):
            out[f"{prefix}.{i}.weight"] = layer.weight.detach().float().clone()
            if layer.bias is not None:
                out[f"{prefix}.{i}.bias"] = layer.bias.detach().float().clone()
        if isinstance(layer, (Add, Concat)):
            out[f"{prefix}.{i}.weights"] = torch.tensor(layer.weights, dtype=torch.float64)
    return out


def save_converted(path: str | Path, conv: ConvertedFile) -> Path:
    """Write ``conv`` to ``path`` (conventionally ``*.spikecast``)."""
    path = Path(path)
    ann = conv.ann
    if conv.calibration is None:
        raise ValueError("save_converted needs the calibration record of the conversion")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "scheme": conv.scheme,
        "params": _json_value(conv.params),
        "input_shape": list(ann.input_shape),
        "names": list(ann.names),
        "layers": [_layer_spec(layer) for layer in ann.layers],
        "sources": [list(src) for src in ann.sources],
        "calibration": _json_value(conv.calibration),
        "info": _json_value(conv.info),
    }
    tensors = _tensors("ann", ann)
    text = json.dumps(strict_json(meta), allow_nan=False)
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), {"spikecast": text}))


def _build(prefix: str, meta: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path):
    sources = meta.get("sources")
    if sources is not None and (
        not isinstance(sources, list) or len(sources) != len(meta["layers"])
        or not all(isinstance(src, list) for src in sources)
    ):
        raise ValueError(f"{path}: 'sources' must list the inputs of each of the "
                         f"{len(meta['layers'])} layers")
    layers: list[Layer] = []
    for i, spec in enumerate(meta["layers"]):
        kind = spec.get("type")
        if kind in ("Linear", "Conv2d"):
            key = f"{prefix}.{i}.weight"
            if key not in tensors:
                raise ValueError(f"{path}: tensor {key!r} missing for layer {i} ({kind})")
            w, b = tensors[key], tensors.get(f"{prefix}.{i}.bias")
            want = 2 if kind == "Linear" else 4
            if (w.dim() != want or not w.is_floating_point()
                    or (b is not None and b.shape != (w.shape[0],))):
                shape = tuple(w.shape)
                raise ValueError(f"{path}: tensor {key!r} has shape {shape}, bad for {kind}")
            if kind == "Linear":
                layers.append(Linear(w, b))
            else:
                layers.append(Conv2d(w, b, tuple(spec["stride"]), tuple(spec["padding"]),
                                     int(spec.get("groups", 1))))
        elif kind in _POOLS:
            layers.append(
                _POOLS[kind](
                    tuple(spec["kernel_size"]), tuple(spec["stride"]), tuple(spec["padding"])
                )
            )
        elif kind in _MERGES:
            key = f"{prefix}.{i}.weights"
            n = len(sources[i]) if sources is not None else 0
            if key not in tensors or tuple(tensors[key].shape) != (n,):
                raise ValueError(f"{path}: tensor {key!r} missing or not {n} weights ({kind})")
            layers.append(_MERGES[kind](tuple(float(w) for w in tensors[key].tolist())))
        elif kind == "Flatten":
            layers.append(Flatten())
        elif kind == "ReLU":
            layers.append(ReLU())
        else:
            raise ValueError(f"{path}: layer {i} has unknown type {kind!r}")
    try:
        net = Network(
            tuple(layers), tuple(meta["names"]), tuple(meta["input_shape"]),
            None if sources is None else tuple(tuple(src) for src in sources),
        )
        net.shapes()
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{path}: the layer graph is inconsistent: {exc}") from exc
    return net


def load_converted(path: str | Path) -> ConvertedFile:
    """Read a file written by :func:`save_converted`, checking format, version and shapes."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such converted-network file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("spikecast")
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(
            f"{path}: not a readable spikecast file (corrupt or truncated): {exc}"
        ) from exc
    if raw is None:
        raise ValueError(f"{path}: safetensors file without spikecast metadata")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: corrupt spikecast metadata: {exc}") from exc
    check_snn_meta(meta, str(path), FORMAT, READABLE_VERSIONS)
    require_finite_tensors(tensors, str(path))
    ann = _build("ann", meta, tensors, path)
    if meta["version"] >= 3:
        return ConvertedFile(meta["scheme"], meta["params"], ann, meta["calibration"],
                             meta["info"])
    return ConvertedFile(meta["scheme"], meta["params"], ann, None, meta["info"],
                         tuple(float(s) for s in meta["scales"]))


def load_network(path: str | Path) -> SpikingModel:
    """The spiking model saved in ``path`` (see :func:`model_from_file`)."""
    return model_from_file(load_converted(path), path)


def model_from_file(conv: ConvertedFile, path: str | Path = "<file>") -> SpikingModel:
    """The recipe rebuilt from the saved parameters, then ``recipe.build(ann, calibration)``."""
    from spikecast.schemes.registry import get_recipe, recipe_class

    recipe = get_recipe(conv.scheme, **(recipe_class(conv.scheme).unrecorded_params | conv.params))
    try:
        if conv.legacy_scales is not None:
            calibration = recipe.legacy_calibration(conv.ann, conv.legacy_scales, conv.params)
        else:
            calibration = recipe.calibration_type.from_dict(conv.calibration)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad calibration for scheme {conv.scheme!r}: {exc}") from None
    return recipe.build(conv.ann, calibration)
