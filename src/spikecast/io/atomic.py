"""Every file spikecast writes is written atomically, and never over an input.

:func:`atomic_write` writes into a temporary file in the destination's folder, flushes it to
disk (fsync), then renames it over the destination (``os.replace``, atomic on POSIX): a
reader sees the previous file or the new one, never a part; a failure at any point (an
exception, a full disk) leaves the previous file intact and no temporary file behind.

:func:`check_output` refuses an output path before any work starts: a directory, a path
under a file, a folder that cannot be written, or a file the same command reads.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from spikecast.errors import SpikecastError

__all__ = [
    "atomic_write",
    "check_output",
    "check_output_dir",
    "strict_json",
    "write_bytes",
    "write_json",
    "write_text",
]


def _umask() -> int:
    """The process umask (read by setting it and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _first_existing(path: Path) -> Path:
    """``path`` itself or its nearest existing ancestor."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Return ``path`` if a file can be written there, else raise :class:`SpikecastError`.

    Refused: an existing directory, a path whose folder is a file (or lies under one), a
    folder without write permission, and any of ``inputs`` (the files the same command
    reads), so that an output never replaces an input.
    """
    path = Path(path)
    if path.is_dir():
        raise SpikecastError(f"{path}: is a directory; give a file name for the output")
    for source in inputs:
        if _same_file(path, Path(source)):
            raise SpikecastError(
                f"{path}: is also an input of this command; writing it would destroy the "
                "input: choose another output path"
            )
    anchor = _first_existing(path.parent)
    if not anchor.is_dir():
        raise SpikecastError(f"{path}: cannot be created, {anchor} is a file, not a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise SpikecastError(f"{path}: the folder {anchor} is not writable")
    return path


def check_output_dir(
    folder: str | os.PathLike, names: Iterable[str], inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Return ``folder`` if the files ``names`` can be written into it (see
    :func:`check_output`), else raise :class:`SpikecastError`."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SpikecastError(f"{folder}: is a file; the output must be a folder")
    sources = list(inputs)
    for name in names:
        check_output(folder / name, sources)
    return folder


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Create ``path`` by ``write(tmp)`` into a temporary file beside it, fsync, rename.

    The temporary name keeps ``path``'s suffix (writers that pick a format by suffix
    work). Any failure removes the temporary file and leaves an existing ``path`` as it
    was; an ``OSError`` (full disk, no permission) becomes a :class:`SpikecastError`
    naming ``path``.
    """
    path = check_output(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
                                    dir=path.parent)
    except OSError as exc:
        raise SpikecastError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise SpikecastError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return write_bytes(path, text.encode("utf-8"))


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (JSON ``null``: the
    quantity is undefined), so that the JSON is standard and every reader parses it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def write_json(path: str | os.PathLike, value: Any, *, indent: int | None = 2) -> Path:
    """Atomically write ``value`` as standard JSON (non-finite floats become null)."""
    text = json.dumps(strict_json(value), indent=indent, allow_nan=False)
    return write_text(path, text + "\n")
