"""Downloading a public dataset file: timeout, progress, resume and checksum.

:func:`fetch` streams ``url`` into ``DEST.part`` beside the destination. Every socket
operation (the connection and each read) times out after ``timeout_s``, so a stalled
server fails instead of hanging. An interrupted download leaves ``DEST.part``; the next
call asks the server for the rest (HTTP ``Range``) and starts over only if the server
cannot resume. The finished file must have the expected MD5 digest, then it is flushed
to disk and renamed to ``DEST`` in one step; a file with another digest is deleted.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from spikecast.errors import SpikecastError

__all__ = ["DEFAULT_TIMEOUT_S", "DownloadError", "fetch", "partial_path"]

DEFAULT_TIMEOUT_S = 30.0
_CHUNK = 1 << 16
_log = logging.getLogger(__name__)


class DownloadError(SpikecastError):
    """A download failed: unreachable, timed out, cut off or with the wrong checksum."""


def partial_path(dest: Path) -> Path:
    """Where the bytes of an unfinished download of ``dest`` are kept: ``DEST.part``."""
    return dest.with_name(dest.name + ".part")


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _open(url: str, offset: int, timeout_s: float) -> tuple[http.client.HTTPResponse, int]:
    """The response for ``url`` from byte ``offset`` on, and the offset it really starts at
    (0 when the server ignores the range and sends the whole file)."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial file is not a prefix of this one
            exc.close()
            return _open(url, 0, timeout_s)
        raise
    if offset and response.status != 206:
        return response, 0
    return response, offset


def fetch(url: str, dest: str | os.PathLike, md5: str, *,
          timeout_s: float = DEFAULT_TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` (see the module docstring); return ``dest``.

    Raises :class:`DownloadError` naming the URL and the cause; the bytes already received
    stay in :func:`partial_path` for the next attempt unless the checksum was wrong.
    """
    dest = Path(dest)
    part = partial_path(dest)
    offset = part.stat().st_size if part.is_file() else 0
    console = Console(stderr=True)
    resume = f" (resuming after {offset:,} bytes)" if offset else ""
    console.print(f"downloading {url} -> {dest}{resume}", soft_wrap=True, highlight=False)
    try:
        response, offset = _open(url, offset, timeout_s)
        with response, open(part, "ab" if offset else "wb") as out:
            size = response.headers.get("Content-Length")
            total = offset + int(size) if size and size.isdigit() else None
            columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
            with Progress(*columns, console=console, transient=True,
                          disable=not console.is_terminal) as bar:
                task = bar.add_task(dest.name, total=total, completed=offset)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.advance(task, len(chunk))
            if total is not None and out.tell() < total:
                raise DownloadError(f"{url}: connection closed after {out.tell():,} of "
                                    f"{total:,} bytes; run again to resume")
            out.flush()
            os.fsync(out.fileno())
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if isinstance(exc, DownloadError):
            raise
        plain_url_error = isinstance(exc, urllib.error.URLError) and not isinstance(
            exc, urllib.error.HTTPError)
        reason = exc.reason if plain_url_error else exc
        if isinstance(reason, TimeoutError):
            reason = f"no response for {timeout_s:g} s (timed out)"
        raise DownloadError(f"{url}: {reason}") from exc
    actual = _md5(part)
    if actual != md5:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: md5 mismatch (expected {md5}, got {actual}); "
                            "the partial file was deleted")
    os.replace(part, dest)
    _log.info("downloaded %s (%s bytes)", dest, f"{dest.stat().st_size:,}")
    return dest
