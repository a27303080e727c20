"""Fuzzing every file reader: any bytes give spikecast's own error or a valid object.

For each format (IDX, npz, .safetensors + JSON sidecar, .spikecast, .nir, .onnx) the
inputs are arbitrary byte strings, truncations and byte flips of a valid file, and (for
the JSON parts) valid files with one metadata field replaced by arbitrary JSON. A reader
may return a value; if it raises, the exception must be a ``ValueError`` raised by
spikecast's own code (the project's type for bad input, :class:`SpikecastError` among
them), never a ``KeyError``, ``TypeError``, ``RuntimeError`` or an error from inside numpy,
torch or a parser. What a reader returns is used as the commands would use it (a model is
captured, a converted network is simulated on one sample).
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, safe_open, save_file

import spikecast
from spikecast.datasets.idx import IDX_FILES, parse_idx_images, parse_idx_labels
from spikecast.datasets.loaders import load_dataset
from spikecast.errors import SpikecastError
from spikecast.frontends.torch_fx import capture
from spikecast.io.annfile import load_model, save_model, sidecar_path
from spikecast.io.snnfile import load_network
from spikecast.ir.graph import Linear, Network, ReLU
from spikecast.schemes import convert, get_recipe
from spikecast.zoo.models import get_architecture

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
_PACKAGE = os.path.dirname(spikecast.__file__)


def _ours(exc: BaseException) -> bool:
    """A ValueError raised in spikecast's own source (not inside a library it calls)."""
    if isinstance(exc, SpikecastError):
        return True
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return (isinstance(exc, ValueError) and tb is not None
            and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE))


def _check(read: Callable[[], Any]) -> None:
    try:
        read()
    except Exception as exc:
        assert _ours(exc), f"{type(exc).__name__} escaped: {exc}"


def _mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, truncations of ``valid`` and ``valid`` with a few bytes flipped."""
    flips = st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)),
                     min_size=1, max_size=6)

    def flipped(changes: list[tuple[int, int]]) -> bytes:
        data = bytearray(valid)
        for i, x in changes:
            data[i] ^= x
        return bytes(data)

    return st.one_of(st.binary(max_size=600), st.integers(0, len(valid)).map(lambda n: valid[:n]),
                     flips.map(flipped))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12,
)


def _field_changes(meta: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``meta`` with one field replaced by arbitrary JSON, or deleted."""
    keys = st.sampled_from(sorted(meta))
    replaced = st.tuples(keys, JSON).map(lambda kv: meta | {kv[0]: kv[1]})
    deleted = keys.map(lambda k: {key: v for key, v in meta.items() if key != k})
    return st.one_of(replaced, deleted)


# IDX ----------------------------------------------------------------------------------------

def _idx_images(images: np.ndarray) -> bytes:
    return np.array([2051, *images.shape], ">u4").tobytes() + images.astype(np.uint8).tobytes()


VALID_IDX = _idx_images(np.arange(2 * 3 * 4).reshape(2, 3, 4))


@FUZZ
@given(data=_mutations(VALID_IDX))
def test_idx_parsers(data: bytes) -> None:
    _check(lambda: parse_idx_images(data, "fuzz"))
    _check(lambda: parse_idx_labels(data, "fuzz"))


@FUZZ
@given(data=_mutations(gzip.compress(VALID_IDX, mtime=0)), stem=st.sampled_from(IDX_FILES))
def test_idx_folder(tmp_path: Path, data: bytes, stem: str) -> None:
    folder = tmp_path / "idx"
    folder.mkdir(exist_ok=True)
    labels = np.array([2049, 2], ">u4").tobytes() + bytes([1, 0])
    for name in IDX_FILES:
        (folder / f"{name}.gz").write_bytes(gzip.compress(
            VALID_IDX if "images" in name else labels, mtime=0))
    (folder / f"{stem}.gz").write_bytes(data)
    _check(lambda: load_dataset(f"idx:{folder}"))


# npz ----------------------------------------------------------------------------------------

@functools.cache
def _valid_npz() -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buffer, x_train=rng.random((4, 3)), y_train=np.array([0, 1, 2, 1]),
             x_test=rng.random((2, 3)), y_test=np.array([1, 0]))
    return buffer.getvalue()


@FUZZ
@given(data=st.data())
def test_npz(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "fuzz.npz"
    path.write_bytes(data.draw(_mutations(_valid_npz())))
    _check(lambda: load_dataset(str(path)))


# .safetensors + sidecar ---------------------------------------------------------------------

@functools.cache
def _valid_model() -> tuple[bytes, dict[str, Any]]:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        path = save_model(get_architecture("wine-fc").build(), Path(folder) / "m.safetensors",
                          arch="wine-fc")
        return path.read_bytes(), json.loads(sidecar_path(path).read_text())


def _load_and_capture(path: Path) -> None:
    module, info = load_model(path)
    capture(module, tuple(info.get("input_shape", (13,))))


@FUZZ
@given(data=st.data())
def test_model_weights(tmp_path: Path, data: st.DataObject) -> None:
    weights, info = _valid_model()
    path = tmp_path / "m.safetensors"
    path.write_bytes(data.draw(_mutations(weights)))
    sidecar_path(path).write_text(json.dumps(info))
    _check(lambda: _load_and_capture(path))


@FUZZ
@given(data=st.data())
def test_model_sidecar(tmp_path: Path, data: st.DataObject) -> None:
    weights, info = _valid_model()
    path = tmp_path / "m.safetensors"
    path.write_bytes(weights)
    text = json.dumps(info).encode()
    side = data.draw(st.one_of(_mutations(text),
                               _field_changes(info).map(lambda m: json.dumps(m).encode())))
    sidecar_path(path).write_bytes(side)
    _check(lambda: _load_and_capture(path))


# .spikecast ---------------------------------------------------------------------------------

def _tiny() -> Network:
    g = torch.Generator().manual_seed(1)
    return Network((Linear(torch.rand(4, 3, generator=g), torch.rand(4, generator=g)), ReLU(),
                    Linear(torch.rand(2, 4, generator=g))), ("h", "h.relu", "out"), (3,))


@functools.cache
def _valid_snn(scheme: str) -> bytes:
    """A converted file of the scheme."""
    net, x = _tiny(), torch.rand(8, 3, generator=torch.Generator().manual_seed(2))
    recipe = get_recipe(scheme, **({"steps": 4} if scheme == "rate" else {}))
    snn = recipe.build(net, recipe.calibrate(net, x))
    with tempfile.TemporaryDirectory() as folder:
        return snn.save(Path(folder) / "f.spikecast").read_bytes()


def _load_and_simulate(path: Path) -> None:
    model = load_network(path)
    x = torch.full((1, *model.ann.input_shape), 0.5)
    model.evaluate(x, torch.zeros(1, dtype=torch.long))


@FUZZ
@given(data=st.data(), scheme=st.sampled_from(["rate", "sigma-delta"]))
def test_converted_file_bytes(tmp_path: Path, data: st.DataObject, scheme: str) -> None:
    path = tmp_path / "f.spikecast"
    path.write_bytes(data.draw(_mutations(_valid_snn(scheme))))
    _check(lambda: _load_and_simulate(path))


@FUZZ
@given(data=st.data(), scheme=st.sampled_from(["rate", "sigma-delta"]))
def test_converted_file_metadata(tmp_path: Path, data: st.DataObject, scheme: str) -> None:
    """Valid tensors, metadata with one field replaced by arbitrary JSON (or removed)."""
    source = tmp_path / "valid.spikecast"
    source.write_bytes(_valid_snn(scheme))
    with safe_open(str(source), framework="pt") as f:
        meta = json.loads(f.metadata()["spikecast"])
    tensors = load_file(str(source))
    changed = data.draw(_field_changes(meta))
    path = tmp_path / "f.spikecast"
    save_file(tensors, str(path), {"spikecast": json.dumps(changed)})
    _check(lambda: _load_and_simulate(path))


# .nir and .onnx -----------------------------------------------------------------------------

@functools.cache
def _valid_nir() -> bytes:
    from spikecast.io.nir import write_nir

    model = convert(_tiny(), get_recipe("rate", steps=4, reset="zero", normalization="none",
                                        v_init=0.0))
    with tempfile.TemporaryDirectory() as folder:
        return write_nir(model, Path(folder) / "m.nir").read_bytes()


@FUZZ
@given(data=st.data())
def test_nir(tmp_path: Path, data: st.DataObject) -> None:
    pytest.importorskip("nir")
    from spikecast.io.nir import read_nir

    path = tmp_path / "f.nir"
    path.write_bytes(data.draw(_mutations(_valid_nir())))
    _check(lambda: read_nir(path))


@functools.cache
def _valid_onnx() -> bytes:
    torch.manual_seed(0)
    module = get_architecture("wine-fc").build().eval()
    buffer = io.BytesIO()
    torch.onnx.export(module, (torch.zeros(1, 13),), buffer, dynamo=False)
    return buffer.getvalue()


@FUZZ
@given(data=st.data())
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx(tmp_path: Path, data: st.DataObject) -> None:
    pytest.importorskip("onnx")
    from spikecast.frontends.onnx.reader import load_onnx

    path = tmp_path / "f.onnx"
    path.write_bytes(data.draw(_mutations(_valid_onnx())))
    _check(lambda: load_onnx(path))
