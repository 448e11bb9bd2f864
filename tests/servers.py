"""Run real servers as subprocesses on free ports: the benchmarks and the tests use them.

- ``running_server``: ``bentoml serve`` (this project's service, the echo reference, or a built Bento);
- ``running_mlflow_server``: ``mlflow models serve``, what a user could run instead of this project.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tweet_sentiment.config import ROOT, settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(
    *bento_args: str,
    target: str = "service:TweetSentiment",
    timeout: float = 180,
    env: dict | None = None,
    log: Path | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """Run ``bentoml serve TARGET --arg ...`` on a free local port; yield its URL once /readyz says 200.

    ``bento_args`` are ``key=value`` strings. The server's output goes to ``log`` (default: a temporary
    file). Raises RuntimeError with the server's log if it dies or is not ready in time. The server is
    stopped on exit. ``port``: a given one instead of a free one.
    """
    port = port or free_port()
    # Its own metrics folder (see private_prometheus_dir), not the caller's.
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    command = [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)]
    for arg in bento_args:
        command += ["--arg", arg]
    with _serving(command, f"http://127.0.0.1:{port}", "/readyz", timeout, env, log) as url:
        yield url


@contextmanager
def running_mlflow_server(model_uri: str, workers: int = 1, timeout: float = 180) -> Iterator[str]:
    """Run ``mlflow models serve -m MODEL_URI --workers N`` in this environment; yield its URL once /ping says 200.

    The model is read from this project's tracking store; its predictions are at POST /invocations.
    """
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": settings().tracking_uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # its uvicorn
    }
    with _serving(command, f"http://127.0.0.1:{port}", "/ping", timeout, env) as url:
        # Warm-up, as the BentoML service does before it says ready: Keras traces a graph for each of the
        # first batch shapes it sees (~1 s each), which would otherwise land on the first measured requests.
        for size in (1, 2, 32):
            body = json.dumps({"inputs": ["warm-up tweet"] * size}).encode()
            request = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
        yield url


@contextmanager
def _serving(
    command: list[str], url: str, ready_path: str, timeout: float, env: dict, log_path: Path | None = None
) -> Iterator[str]:
    with open(log_path, "w+") if log_path else tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while not answers_200(url + ready_path):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    state = f"exited with {process.returncode}" if process.poll() is not None else "not ready"
                    raise RuntimeError(f"`{' '.join(command)}` {state}:\n{log.read()[-5000:]}")
                time.sleep(0.5)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):  # already gone: the error above says why
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def server_process(url: str):
    """The `bentoml serve` process listening at ``url`` (a psutil.Process; its workers are its children)."""
    import psutil

    port = str(urllib.parse.urlsplit(url).port)
    [server] = [p for p in psutil.process_iter(["cmdline"]) if port in (p.info["cmdline"] or [])]
    return server


def answers_200(url: str, within: float = 0) -> bool:
    """True when a GET of ``url`` answers 200 (each try within 2 s), trying again for ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
