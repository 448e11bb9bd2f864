"""Run real servers as subprocesses on free ports: the benchmarks and the tests use them.

- ``running_server``: ``bentoml serve`` (this project's service, the echo reference, or a built Bento);
- ``running_mlflow_server``: ``mlflow models serve``, what a user could run instead of this project;
- ``kill_tree``: SIGKILL a server and every process under it, as a crash or an OOM kill does;
- ``leaves_no_process``: a run that fails, naming them, when processes it started outlive it.
"""

import contextlib
import ctypes
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from tweet_sentiment.core.config import ROOT, settings


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
    with running_program(command, f"http://127.0.0.1:{port}", "/readyz", timeout, env, log) as url:
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
    with running_program(command, f"http://127.0.0.1:{port}", "/ping", timeout, env) as url:
        # Warm-up, as the BentoML service does before it says ready: Keras traces a graph for each of the
        # first batch shapes it sees (~1 s each), which would otherwise land on the first measured requests.
        for size in (1, 2, 32):
            body = json.dumps({"inputs": ["warm-up tweet"] * size}).encode()
            request = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
        yield url


@contextmanager
def running_program(
    command: list[str], url: str, ready_path: str, timeout: float, env: dict, log_path: Path | None = None
) -> Iterator[str]:
    """Run ``command`` (a server of any kind); yield ``url`` once ``url + ready_path`` answers 200; stop it on exit
    (RuntimeError with its log if it dies or is not ready within ``timeout``)."""
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
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM a server, as a process manager does; SIGKILL its whole tree if it has not exited in 30 s.

    BentoML starts each worker in a session of its own, so neither signal to the server's process group
    reaches the workers: the server stops them on SIGTERM, and a SIGKILL must name every descendant.
    Raises RuntimeError naming any descendant still running after the server exited.
    """
    descendants = []
    with contextlib.suppress(psutil.NoSuchProcess):
        descendants = psutil.Process(process.pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        kill_tree(process.pid)
        process.wait()
    _, alive = psutil.wait_procs(descendants, timeout=10)
    if alive:
        names = describe(alive)
        kill_tree(*(p.pid for p in alive))
        raise RuntimeError(f"`{' '.join(process.args)}` exited and left {names} running (killed now)")


def kill_tree(*pids: int) -> None:
    """SIGKILL these processes and all their descendants at once, and wait until every one is gone."""
    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            processes += [root, *root.children(recursive=True)]
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    _, alive = psutil.wait_procs(processes, timeout=10)
    alive = [p for p in alive if _running(p)]  # a zombie is dead; its parent reaps it
    if alive:
        raise RuntimeError(f"still running after SIGKILL: {describe(alive)}")


def describe(processes: list[psutil.Process]) -> str:
    """``pid 123 (python -m bentoml serve ...)`` for each process, as far as it can still be read."""
    described = []
    for process in processes:
        try:
            described.append(f"pid {process.pid} ({' '.join(process.cmdline())[:160]})")
        except psutil.Error:
            described.append(f"pid {process.pid}")
    return ", ".join(described)


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextmanager
def leaves_no_process() -> Iterator[None]:
    """Fail, naming them, when processes started inside outlive the block (they are killed then).

    On Linux this process becomes a child subreaper, so what its children leave when they exit (a server's
    workers, a daemonized PostgreSQL) is re-parented to it rather than to init and stays in sight.
    """
    _become_subreaper()
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and not _own_helper(p)]
    running = [p for p in left if _running(p)]
    names = describe(running)
    if running:
        kill_tree(*(p.pid for p in running))
    for process in left:  # reap the zombies re-parented here
        with contextlib.suppress(ChildProcessError):
            os.waitpid(process.pid, os.WNOHANG)
    if running:
        raise RuntimeError(f"processes outlived the run (killed now): {names}")


def _own_helper(process: psutil.Process) -> bool:
    """multiprocessing's resource tracker or fork server for this very process: each ends when it does."""
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return False
    return "multiprocessing.resource_tracker" in command or "multiprocessing.forkserver" in command


def _become_subreaper() -> None:
    if sys.platform == "linux":
        PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def refuses_connections(url: str, within: float = 10) -> bool:
    """True once nothing accepts a TCP connection at ``url``'s port (trying for ``within`` seconds)."""
    address = urllib.parse.urlsplit(url)

    def refused() -> bool:
        try:
            socket.create_connection((address.hostname, address.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        return False

    return eventually(refused, within)


def metric_total(url: str, series: str) -> float:
    """The sum of the samples of ``series`` (a name and labels, e.g. ``x_total{a="b"}``) in ``url``/metrics."""
    with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith(series))


def server_process(url: str) -> psutil.Process:
    """The `bentoml serve` process listening at ``url`` (its workers are its children)."""
    port = str(urllib.parse.urlsplit(url).port)
    [server] = [p for p in psutil.process_iter(["cmdline"]) if port in (p.info["cmdline"] or [])]
    return server


def worker_process(url: str) -> psutil.Process:
    """The one worker (``_bentoml_impl.worker.service``) of the `bentoml serve` process listening at ``url``."""
    [worker] = [p for p in server_process(url).children(recursive=True) if "worker" in " ".join(p.cmdline())]
    return worker


def answers_200(url: str, within: float = 0) -> bool:
    """True when a GET of ``url`` answers 200 (each try within 2 s), trying again for ``within`` seconds."""

    def ok() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    return eventually(ok, within)


def eventually(check: Callable[[], bool], within: float, every: float = 0.1) -> bool:
    """True as soon as ``check()`` is, trying every ``every`` s for ``within`` seconds; else False."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True


@contextmanager
def busy_cores(count: int = os.cpu_count() or 2, seconds: float = 300) -> Iterator[None]:
    """``count`` processes spinning on the CPU at normal priority for the block (at most ``seconds``): a busy
    machine, for a test that must hold on one. They are killed when the block ends."""
    spin = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
