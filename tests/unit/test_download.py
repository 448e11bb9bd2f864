"""The data download against a local HTTP server: verified, resumed, retried, atomic, clear when it fails."""

import hashlib
import http.server
import threading
from pathlib import Path
from typing import ClassVar

import pytest

import download_data
from tweet_sentiment.training.download import SOURCES, DownloadError, Source, download

REPO, COMMIT = "owner/repo", "0" * 40


class Files(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` at /OWNER/REPO/COMMIT/NAME, as GitHub's raw files do, with Range support.

    ``cut`` names files whose first answer stops halfway (a broken connection), ``failures`` files
    that answer 503 that many times. The fixture resets them.
    """

    files: ClassVar[dict[str, bytes]] = {}
    cut: ClassVar[set[str]] = set()
    failures: ClassVar[dict[str, int]] = {}
    requests: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        name = "/".join(self.path.split("/")[4:])  # /OWNER/REPO/COMMIT/path/in/repo
        self.requests.append((name, self.headers.get("Range")))
        if self.failures.get(name, 0) > 0:
            self.failures[name] -= 1
            return self.send_error(503)
        if name not in self.files:
            return self.send_error(404)
        body, status = self.files[name], 200
        if (wanted := self.headers.get("Range")) is not None:
            body, status = body[int(wanted.removeprefix("bytes=").rstrip("-")) :], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in self.cut:
            self.cut.discard(name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection breaks mid-file
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    Files.files, Files.cut, Files.failures, Files.requests = {}, set(), {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def source(name: str, content: bytes) -> Source:
    return Source(f"set/{name}", REPO, COMMIT, name, hashlib.sha256(content).hexdigest())


def test_downloads_verifies_and_leaves_good_files_alone(server, tmp_path):
    big = bytes(range(256)) * 4_000
    Files.files = {"a.txt": b"alpha\n", "big.bin": big}
    sources = (source("a.txt", b"alpha\n"), source("big.bin", big))
    assert download(tmp_path, server, sources) == [tmp_path / "set/a.txt", tmp_path / "set/big.bin"]
    assert (tmp_path / "set/big.bin").read_bytes() == big
    assert download(tmp_path, server, sources) == []  # present and right: nothing fetched
    (tmp_path / "set/a.txt").write_text("tampered")
    assert download(tmp_path, server, sources) == [tmp_path / "set/a.txt"]


def test_a_broken_connection_resumes_where_it_stopped(server, tmp_path):
    big = bytes(range(256)) * 4_000
    Files.files, Files.cut = {"big.bin": big}, {"big.bin"}
    download(tmp_path, server, (source("big.bin", big),))
    assert (tmp_path / "set/big.bin").read_bytes() == big
    (_, first), (_, second) = Files.requests
    resumed_at = int(second.removeprefix("bytes=").rstrip("-"))
    assert first is None and 0 < resumed_at <= len(big) // 2  # from what had arrived, not from zero
    assert not list(tmp_path.rglob("*.part"))


def test_server_errors_are_retried(server, tmp_path):
    Files.files, Files.failures = {"a.txt": b"alpha\n"}, {"a.txt": 2}
    download(tmp_path, server, (source("a.txt", b"alpha\n"),))
    assert len(Files.requests) == 3 and (tmp_path / "set/a.txt").read_bytes() == b"alpha\n"


def test_wrong_checksum_keeps_nothing_and_says_which_file_and_url(server, tmp_path):
    Files.files = {"a.txt": b"not what was pinned\n"}
    with pytest.raises(DownloadError, match=r"a\.txt: http://127\.0\.0\.1:\d+/owner/repo/0+/a\.txt gave SHA-256"):
        download(tmp_path, server, (source("a.txt", b"alpha\n"),))
    assert not (tmp_path / "set/a.txt").exists() and not list(tmp_path.rglob("*.part"))


def test_missing_or_unreachable_source_is_a_clear_error(server, tmp_path):
    with pytest.raises(DownloadError, match=r"a\.txt: .*/a\.txt answered 404"):
        download(tmp_path, server, (source("a.txt", b"alpha\n"),))
    Files.files, Files.failures = {"a.txt": b"alpha\n"}, {"a.txt": 10}
    with pytest.raises(DownloadError, match=r"unreachable after 4 attempts \(HTTP 503\)"):
        download(tmp_path, server, (source("a.txt", b"alpha\n"),))


def test_command_fills_a_data_folder_that_the_loaders_read(server, tmp_path):
    """Every real source, served from the offline copies as GitHub would serve them."""
    from tweet_sentiment.core.config import settings
    from tweet_sentiment.training import data

    offline = settings().data_dir
    Files.files = {s.remote: (offline / s.path).read_bytes() for s in SOURCES}
    target = tmp_path / "data"
    fetched = download_data.main(["--data-dir", str(target), "--base-url", server])
    assert len(fetched) == len(SOURCES)
    assert {Path(f).relative_to(target).as_posix() for f in fetched} == {s.path for s in SOURCES}
    assert len(data.load_airline(target / "airline" / "tweets.csv")) == 11_541
