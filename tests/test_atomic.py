"""Atomic writes under injected faults, and output paths refused before any work.

Faults: the writer dies half-way (an exception after some bytes), the rename fails (a
kill between write and rename), the disk is full (ENOSPC from a write or from fsync). In
each case the previous file keeps its bytes and no temporary file is left behind.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import spikecast.io.atomic as atomic
from spikecast.errors import SpikecastError
from spikecast.io.annfile import save_model
from spikecast.io.atomic import atomic_write, check_output, check_output_dir, write_json
from spikecast.ir.graph import Linear, Network, ReLU
from spikecast.measure.result import RunResults
from spikecast.schemes import convert, get_recipe
from spikecast.zoo.models import get_architecture

OLD = b"the previous, valid file\n"


def _net() -> Network:
    return Network((Linear(torch.ones(2, 3)), ReLU(), Linear(torch.ones(2, 2))),
                   ("a", "a.relu", "b"), (3,))


def _writers() -> dict[str, Callable[[Path], object]]:
    """Every kind of file spikecast writes, each writing to the given path."""
    net = _net()

    def snn(path: Path) -> object:
        return convert(net, get_recipe("rate", steps=4, normalization="none")).save(path)

    def model(path: Path) -> object:
        return save_model(get_architecture("wine-fc").build(), path, arch="wine-fc")

    def report(path: Path) -> object:
        return atomic.write_text(path, "<html></html>")

    def figure(path: Path) -> object:
        from matplotlib.figure import Figure

        fig = Figure()
        fig.subplots().plot([0, 1], [1, 0])
        return atomic_write(path, lambda tmp: fig.savefig(tmp))

    return {
        "results.json": lambda path: RunResults("wine", 0.5, 10, 3).save(path),
        "net.spikecast": snn,
        "model.safetensors": model,
        "report.html": report,
        "figure.png": figure,
    }


WRITERS = _writers()


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.parametrize("name", list(WRITERS))
def test_every_writer_replaces_the_file_whole(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(OLD)
    WRITERS[name](path)
    assert path.read_bytes() != OLD and path.stat().st_size > 0
    expected = {name, "model.json"} if name == "model.safetensors" else {name}
    assert _leftovers(tmp_path, set()) == sorted(expected)
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("name", list(WRITERS))
def test_a_failed_rename_keeps_the_previous_file(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill between the write and the rename: the rename never happens."""
    path = tmp_path / name
    path.write_bytes(OLD)

    def killed(src: object, dst: object) -> None:
        raise OSError(errno.EINTR, "killed before the rename")

    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(SpikecastError, match=f"{name}: cannot write: killed before the rename"):
        WRITERS[name](path)
    assert path.read_bytes() == OLD
    assert _leftovers(tmp_path, {name}) == []


@pytest.mark.parametrize("name", list(WRITERS))
def test_a_full_disk_keeps_the_previous_file(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync reports ENOSPC (delayed allocation) after the bytes were handed to the OS."""
    path = tmp_path / name
    path.write_bytes(OLD)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(SpikecastError, match="No space left on device"):
        WRITERS[name](path)
    assert path.read_bytes() == OLD
    assert _leftovers(tmp_path, {name}) == []


def test_a_write_that_dies_half_way_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(OLD)

    def dies(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(b'{"truncated": ')
            raise KeyboardInterrupt  # the process is interrupted mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, dies)
    assert path.read_bytes() == OLD
    assert _leftovers(tmp_path, {"results.json"}) == []


def test_a_full_disk_during_the_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(OLD)
    real = Path.write_bytes

    def half_then_full(self: Path, data: bytes) -> int:
        real(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(SpikecastError, match=r"results\.json: cannot write: No space left"):
        write_json(path, {"accuracy": 0.9})
    monkeypatch.undo()
    assert path.read_bytes() == OLD
    assert _leftovers(tmp_path, {"results.json"}) == []


def test_json_is_strict_non_finite_floats_become_null(tmp_path: Path) -> None:
    path = write_json(tmp_path / "r.json", {"a": float("nan"), "b": [1.5, float("inf")],
                                            "c": {"d": -float("inf")}})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": {"d": None}}


def test_output_paths_are_refused_before_any_work(tmp_path: Path) -> None:
    folder, afile = tmp_path / "folder", tmp_path / "afile"
    folder.mkdir()
    afile.write_bytes(OLD)
    with pytest.raises(SpikecastError, match="folder: is a directory"):
        check_output(folder)
    with pytest.raises(SpikecastError, match=r"afile is a file, not a folder"):
        check_output(afile / "deeper" / "x.json")
    with pytest.raises(SpikecastError, match="is also an input of this command"):
        check_output(afile, [afile])
    link = tmp_path / "link"
    link.symlink_to(afile)
    with pytest.raises(SpikecastError, match="is also an input of this command"):
        check_output(link, [afile])
    with pytest.raises(SpikecastError, match="afile: is a file; the output must be a folder"):
        check_output_dir(afile, ["results.json"])
    (folder / "report.html").mkdir()
    with pytest.raises(SpikecastError, match=r"report\.html: is a directory"):
        check_output_dir(folder, ["results.json", "report.html"])
    assert check_output(tmp_path / "new" / "sub" / "x.json") == tmp_path / "new" / "sub" / "x.json"
    assert afile.read_bytes() == OLD


def _read_only_check(folder: Path) -> str:
    """The error check_output gives for a file in a read-only ``folder``: as a normal user
    a mode-0555 folder; as root (who may write anywhere) a read-only tmpfs mounted in a
    private user and mount namespace."""
    target = folder / "out.json"
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            with pytest.raises(SpikecastError) as err:
                check_output(target)
        finally:
            folder.chmod(0o755)
        return str(err.value)
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: no folder is read-only to root")
    code = ("import sys; from spikecast.io.atomic import check_output\n"
            f"try:\n    check_output({str(target)!r})\n"
            "except ValueError as e:\n    print(e); sys.exit(3)\n")
    script = f"mount -t tmpfs -o ro tmpfs {folder} && {sys.executable} -c \"$0\""
    run = subprocess.run(["unshare", "-rm", "sh", "-c", script, code], capture_output=True,
                         text=True, env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)})
    if run.returncode not in (0, 3):
        pytest.skip(f"cannot mount a read-only folder here: {run.stderr.strip()[-200:]}")
    assert run.returncode == 3, run.stdout + run.stderr
    return run.stdout


def test_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    assert f"the folder {folder} is not writable" in _read_only_check(folder)
