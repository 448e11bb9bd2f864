"""Floods and faults, against a real `bentoml serve`: slow and oversized bodies, silent connections, path floods.

One server for the module, with short limits so that each case takes seconds: a 2 s body timeout, a 1 s
header timeout and 4 requests in flight at most.
"""

import json
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from harness.servers import running_server, server_process
from tweet_sentiment.serve.internals import METRICS_DIR_PREFIX, remove_dead_servers_metrics

TWEET = "the crew was lovely"
MAX_CONCURRENCY = 4


@pytest.fixture(scope="module")
def url(trained):
    env = {**os.environ, "TWEETS_BODY_TIMEOUT_SECONDS": "2", "TWEETS_HEADER_TIMEOUT_SECONDS": "1"}
    with running_server(f"max_concurrency={MAX_CONCURRENCY}", env=env) as url:
        yield url


def connect(url: str) -> socket.socket:
    address = httpx.URL(url)
    return socket.create_connection((address.host, address.port), timeout=10)


def request_head(route: str, length: int) -> bytes:
    return (
        f"POST {route} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def status_of(connection: socket.socket) -> int:
    """The status code of the response on ``connection``, 0 if it was closed without one."""
    line = connection.makefile("rb").readline().decode()
    return int(line.split()[1]) if line else 0


def worker_rss_mib(url: str) -> float:
    """Resident memory of the server's worker process(es), MiB."""
    return sum(child.memory_info().rss for child in server_process(url).children(recursive=True)) / 2**20


def test_a_body_declared_too_large_is_refused_before_it_is_read(url):
    with connect(url) as connection:
        connection.sendall(request_head("/predict", 50_000_000))  # and not a byte of the body
        response = connection.makefile("rb").read().decode()
    assert response.startswith("HTTP/1.1 413")
    assert json.loads(response.split("\r\n\r\n", 1)[1]) == {"error": "the body is over 4,000,000 bytes"}


def test_a_streamed_body_is_cut_once_it_is_too_large(url):
    chunk = b"x" * 65_536
    with connect(url) as connection:
        head = "POST /status HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        connection.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        try:
            for _ in range(100):  # 6.5 MB, past the 4 MB limit
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:  # the server answered and closed: the rest was never read
            pass
        assert status_of(connection) == 413


def test_32_oversized_bodies_at_once_leave_memory_where_it_was(url):
    idle = worker_rss_mib(url)

    def attempt(_) -> int:
        with connect(url) as connection:
            connection.sendall(request_head("/predict_batch", 50_000_000))
            try:
                for _ in range(50):
                    connection.sendall(b"x" * 1_000_000)
            except OSError:
                pass
            return status_of(connection)

    with ThreadPoolExecutor(32) as pool:
        codes = list(pool.map(attempt, range(32)))
    assert set(codes) <= {413, 0} and 413 in codes  # 0: reset while still sending, after the 413
    assert worker_rss_mib(url) - idle < 100


def test_slow_bodies_hold_no_place_in_the_in_flight_limit_and_get_408(url):
    body = json.dumps({"tweet": TWEET}).encode()
    slow = [connect(url) for _ in range(2 * MAX_CONCURRENCY)]
    for connection in slow:
        connection.sendall(request_head("/predict", len(body)) + body[:5])  # the rest never comes
    time.sleep(0.3)
    answer = httpx.post(f"{url}/predict", json={"tweet": TWEET}, timeout=5)
    assert answer.status_code == 200  # not 503: the slow ones are not in flight yet
    started = time.monotonic()
    assert [status_of(connection) for connection in slow] == [408] * len(slow)
    assert time.monotonic() - started < 5
    for connection in slow:
        connection.close()


def test_silent_and_slowloris_connections_are_closed(url):
    idle, trickle = connect(url), connect(url)
    started = time.monotonic()
    trickle.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\n")
    for byte in b"X-Slow: " + b"a" * 20:  # one byte every 0.2 s: each would have reset a per-read timer
        try:
            trickle.sendall(bytes([byte]))
        except OSError:
            break
        time.sleep(0.2)
    assert idle.recv(1) == b"" and trickle.recv(1) == b""  # closed by the server
    assert time.monotonic() - started < 3
    idle.close()
    trickle.close()
    assert httpx.post(f"{url}/predict", json={"tweet": TWEET}).status_code == 200


def test_metrics_keep_a_bounded_set_of_series_whatever_paths_clients_send(url):
    before = httpx.get(f"{url}/metrics").text
    paths = [f"/{uuid.uuid4().hex * 16}" for _ in range(200)]  # 512 characters each
    with httpx.Client(base_url=url) as client:
        assert {client.get(path).status_code for path in paths} == {404}
        assert client.post("/predict", json={"tweet": TWEET}).status_code == 200
    after = httpx.get(f"{url}/metrics").text
    assert not any(path in after for path in paths)
    assert len(after) - len(before) < 20_000  # /predict's own new series only
    assert 'endpoint="/predict"' in after


def test_feedback_errors_have_the_one_error_shape(url):
    with httpx.Client(base_url=url) as client:
        neither = {"tweet": TWEET, "predicted_label": "negative"}
        both = {**neither, "true_label": "positive", "wrong": True}
        for body in (neither, both):
            answer = client.post("/feedback", json=body)
            assert answer.status_code == 400 and set(answer.json()) == {"error", "detail"}
            [detail] = answer.json()["detail"]
            assert detail["msg"] == "Value error, give true_label, or wrong (true/false): one of them"


def test_metrics_folders_of_dead_servers_are_removed(tmp_path):
    gone = psutil.Popen(["true"])
    gone.wait()
    dead, alive = tmp_path / f"{METRICS_DIR_PREFIX}{gone.pid}-abc", tmp_path / f"{METRICS_DIR_PREFIX}{os.getpid()}-abc"
    dead.mkdir()
    alive.mkdir()
    remove_dead_servers_metrics(tmp_path)
    assert not dead.exists() and alive.exists()
