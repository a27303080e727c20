"""Downloads against a local HTTP server on 127.0.0.1 only: a stalled server times out, a
partial file is resumed with a Range request, a wrong checksum is refused, and the MNIST
loader downloads, checks and explains."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mnist_data import MNIST_MINI

import spikecast.datasets.loaders as loaders
from spikecast.datasets.download import DownloadError, fetch, partial_path
from spikecast.datasets.idx import IDX_FILES
from spikecast.datasets.loaders import DataError, load_dataset

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


@dataclass
class Server:
    """What the local server serves and how it behaves; what it was asked and sent."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    mode: str = "normal"  # normal | stall | cut | no_range
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    sent: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, name: str, prefix: str = "files") -> str:
        return f"http://127.0.0.1:{self.port}/{prefix}/{name}"


def _handler(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Range")))
            data = state.files.get(self.path.rsplit("/", 1)[-1])
            if data is None:
                self.send_error(404)
                return
            if state.mode == "stall":  # headers, then silence
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.flush()
                state.release.wait(20)
                return
            start, ranged = 0, self.headers.get("Range")
            if ranged and state.mode != "no_range":
                start = int(ranged.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.mode == "cut":  # half the promised bytes, then the connection closes
                body = body[: len(body) // 2]
            self.wfile.write(body)
            state.sent += len(body)

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(files={"data.bin": PAYLOAD})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()


def test_fetch_writes_the_file_and_no_partial(server: Server, tmp_path: Path) -> None:
    dest = fetch(server.url("data.bin"), tmp_path / "data.bin", PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]
    assert server.requests == [("/files/data.bin", None)]


def test_a_stalled_server_times_out(server: Server, tmp_path: Path) -> None:
    server.mode = "stall"
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"data\.bin: no response for 0\.5 s \(timed out\)"):
        fetch(server.url("data.bin"), tmp_path / "data.bin", PAYLOAD_MD5, timeout_s=0.5)
    assert time.monotonic() - start < 10
    assert not (tmp_path / "data.bin").exists()


def test_a_partial_file_is_resumed_with_a_range_request(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    partial_path(dest).write_bytes(PAYLOAD[:3000])
    fetch(server.url("data.bin"), dest, PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/files/data.bin", "bytes=3000-")]
    assert server.sent == len(PAYLOAD) - 3000  # only the missing bytes travelled
    assert not partial_path(dest).exists()


def test_a_cut_connection_keeps_the_bytes_and_the_next_call_resumes(
    server: Server, tmp_path: Path
) -> None:
    dest = tmp_path / "data.bin"
    server.mode = "cut"
    with pytest.raises(DownloadError, match="closed after 5,120 of 10,240 bytes; run again"):
        fetch(server.url("data.bin"), dest, PAYLOAD_MD5)
    kept = partial_path(dest).stat().st_size
    assert kept == len(PAYLOAD) // 2 and not dest.exists()
    server.mode = "normal"
    fetch(server.url("data.bin"), dest, PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/files/data.bin", f"bytes={kept}-")


def test_a_server_without_ranges_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    partial_path(dest).write_bytes(b"x" * 500)  # not even a prefix of the file
    server.mode = "no_range"
    fetch(server.url("data.bin"), dest, PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    wrong = "0" * 32
    with pytest.raises(DownloadError, match=f"md5 mismatch \\(expected {wrong}, got {PAYLOAD_MD5}"):
        fetch(server.url("data.bin"), dest, wrong)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def mini_mirrors(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The MNIST loader pointed at the local server (two mirrors) serving the shipped subset,
    with the subset's checksums; no $SPIKECAST_DATA and an empty cache. Returns the cache."""
    files = {f"{stem}.gz": (MNIST_MINI / f"{stem}.gz").read_bytes() for stem in IDX_FILES}
    server.files = files
    monkeypatch.setattr(loaders, "MNIST_MIRRORS", (server.url("", "a"), server.url("", "b")))
    monkeypatch.setattr(loaders, "MNIST_MD5", {
        stem: hashlib.md5(files[f"{stem}.gz"]).hexdigest() for stem in IDX_FILES})
    monkeypatch.delenv("SPIKECAST_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "spikecast" / "mnist"


def test_mnist_is_downloaded_checked_and_cached(server: Server, mini_mirrors: Path) -> None:
    ds = load_dataset("mnist")
    assert (len(ds.x_train), len(ds.x_test)) == (300, 200) and ds.name == "mnist"
    assert [path for path, _ in server.requests] == [f"/a/{stem}.gz" for stem in IDX_FILES]
    assert sorted(p.name for p in mini_mirrors.iterdir()) == sorted(f"{s}.gz" for s in IDX_FILES)
    server.requests.clear()
    load_dataset("mnist")  # cached: no second download
    assert server.requests == []


def test_a_corrupt_mirror_is_refused_on_both_mirrors(
    server: Server, mini_mirrors: Path
) -> None:
    server.files = {k: v[:-1] + bytes([v[-1] ^ 0xFF]) for k, v in server.files.items()}
    with pytest.raises(DataError, match="md5 mismatch") as err:
        load_dataset("mnist")
    assert [path for path, _ in server.requests] == [f"/a/{IDX_FILES[0]}.gz",
                                                      f"/b/{IDX_FILES[0]}.gz"]
    assert "download train-images-idx3-ubyte.gz" in str(err.value)
    assert list(mini_mirrors.iterdir()) == []


def test_an_unreachable_mirror_says_where_to_put_the_files(
    server: Server, mini_mirrors: Path, tmp_path: Path
) -> None:
    server.files = {}
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=tmp_path / "empty")
    msg = str(err.value)
    assert "HTTP Error 404" in msg and str(tmp_path / "empty") in msg
    assert f"into {mini_mirrors}" in msg and "SPIKECAST_DATA" in msg and "--data-dir" in msg
    for stem in IDX_FILES:
        assert f"{stem}.gz" in msg
