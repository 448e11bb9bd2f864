"""Run `bentoml serve` as a subprocess on a free port: the benchmarks and the tests use real servers."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from tweet_sentiment.config import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(
    *bento_args: str, target: str = "service:TweetSentiment", timeout: float = 180, env: dict | None = None
) -> Iterator[str]:
    """Run ``bentoml serve TARGET --arg ...`` on a free local port; yield its URL once /readyz says 200.

    ``bento_args`` are ``key=value`` strings. Raises RuntimeError with the server's log if it dies
    or is not ready in time. The server is stopped on exit.
    """
    port = free_port()
    # Its own metrics folder (see private_prometheus_dir), not the caller's.
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    command = [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)]
    for arg in bento_args:
        command += ["--arg", arg]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while not _ready(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    state = f"exited with {process.returncode}" if process.poll() is not None else "not ready"
                    raise RuntimeError(f"`{' '.join(command)}` {state}:\n{log.read()[-5000:]}")
                time.sleep(0.5)
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
