"""Several replicas behind nginx, sharing PostgreSQL: a rolling model update and a killed replica, under load.

    python -m benchmarks.replicas --database postgresql+psycopg://...   # ~3 min; writes benchmarks/results/REPLICAS.md

The same procedure as `kubectl rollout` of the StatefulSet (docs/operations.md, Running several replicas), on
this machine: replicas are `bentoml serve` processes on a fixed set of ports, nginx (Debian's package, its config
and state in a temporary folder) balances those ports as a Service balances its endpoints, and a replica is
replaced by starting the new one, waiting for /readyz, then stopping the old one with SIGTERM: it stops
listening (nginx is refused and passes the request on) and answers what it has. tests/system/test_replicas.py runs
it on tiny models.
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx

from harness.servers import (
    answers_200,
    free_port,
    kill_tree,
    leaves_no_process,
    refuses_connections,
    running_server,
    server_process,
)
from tweet_sentiment.lifecycle.figures import stamped
from tweet_sentiment.serve.internals import remove_dead_servers_metrics

NGINX = """
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  log_format upstream '$msec|$request_time|$upstream_addr|$upstream_status|$status';
  access_log {folder}/access.log upstream;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  upstream replicas {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    # A new connection a request (no upstream keep-alive): a replica that stops listening is refused
    # cleanly, and nginx passes the request to the next one.
    proxy_http_version 1.1;
    # Feedback is passed on only if it never reached a replica (it would be stored twice).
    location /feedback {{
      proxy_pass http://replicas;
      proxy_next_upstream error timeout;
    }}
    # Predictions are pure: one a dying replica dropped is sent to the next one too.
    location / {{
      proxy_pass http://replicas;
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 4;
    }}
  }}
}}
"""
# A replica that fails once is left alone for FAIL_TIMEOUT_S, then tried again with one request.
FAIL_TIMEOUT_S = 5
SLOTS = 4  # ports nginx balances: two replicas serving, two for their replacements
REPORT_TRIES = 5
Answer = tuple[float, float, int, str]  # (start time, ms, status, model) of one request


@contextmanager
def running_nginx(ports: list[int]) -> Iterator["Nginx"]:
    """nginx balancing the replicas on ``ports`` (a port with none yet is skipped, as a Kubernetes Service's
    endpoints come and go), with its config and state in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="tweet-sentiment-nginx-") as folder:
        servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;" for p in ports)
        nginx = Nginx(Path(folder))
        (nginx.folder / "nginx.conf").write_text(NGINX.format(folder=folder, port=nginx.port, servers=servers))
        process = subprocess.Popen(["nginx", "-c", str(nginx.folder / "nginx.conf"), "-g", "daemon off;"])
        try:
            if not answers_200(f"{nginx.url}/livez", within=10):
                raise RuntimeError(f"nginx is not answering: {(nginx.folder / 'error.log').read_text()[-2000:]}")
            yield nginx
        finally:
            process.terminate()
            process.wait(timeout=30)


@dataclass
class Route:
    start: float  # when nginx read the request
    end: float
    tries: list[tuple[str, str]]  # (upstream address, what it answered: nginx says 502 for a refused connection)
    status: int  # the answer the client got


@dataclass
class Nginx:
    folder: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routed(self) -> list[Route]:
        """How nginx routed every request, from its access log."""
        routes = []
        for line in (self.folder / "access.log").read_text().splitlines():
            # "a:1, b:2|502, 200" when nginx tried a, then passed the request on to b
            end, seconds, upstreams, upstream_statuses, status = line.split("|")
            tries = list(zip(upstreams.split(", "), upstream_statuses.split(", "), strict=True))
            routes.append(Route(float(end) - float(seconds), float(end), tries, int(status)))
        return routes


@dataclass
class Replica:
    url: str
    stack: ExitStack

    @property
    def port(self) -> int:
        return httpx.URL(self.url).port

    def stop(self) -> None:
        """SIGTERM: the server stops listening, answers what it has, then exits."""
        self.stack.close()

    def kill(self) -> None:
        """SIGKILL the server and all its workers at once, as a crashed or OOM-killed container loses all its
        processes; returns once its port refuses connections."""
        kill_tree(server_process(self.url).pid)
        if not refuses_connections(self.url):
            raise RuntimeError(f"the killed replica's port {self.port} still accepts connections")
        self.stack.close()
        remove_dead_servers_metrics(Path(tempfile.gettempdir()))  # a killed server cannot remove its own


def start_replica(model_tag: str, env: dict[str, str], port: int) -> Replica:
    stack = ExitStack()
    url = stack.enter_context(running_server(f"model_tag={model_tag}", env=env, port=port))
    return Replica(url, stack)


@dataclass
class Load:
    """``users`` threads sending one-tweet /predict requests back to back through ``url`` until stopped."""

    url: str
    users: int
    answers: list[Answer] = field(default_factory=list)
    feedback: list[tuple[int, int | None]] = field(default_factory=list)  # (status, stored id) of each report
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> "Load":
        for target in [self._user] * self.users + [self._reporter]:
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _user(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                start = time.time()
                try:
                    answer = client.post("/predict", json={"tweet": "the crew was lovely, the flight was late"})
                    model = answer.json().get("model", "") if answer.status_code == 200 else ""
                    status = answer.status_code
                except httpx.HTTPError:
                    status, model = 0, ""
                self.answers.append((start, (time.time() - start) * 1000, status, model))

    def _reporter(self) -> None:
        """A wrong-prediction report every second, each with its own idempotency key, sent again with the same
        key until acknowledged (nginx does not pass a report on once a replica may have stored it): what a
        client of /feedback does so that no report is lost and none stored twice."""
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.wait(1):
                body = {"tweet": "late again", "predicted_label": "positive", "wrong": True}
                body["idempotency_key"] = str(uuid.uuid4())
                for _ in range(REPORT_TRIES):
                    try:
                        answer = client.post("/feedback", json=body)
                        status = answer.status_code
                    except httpx.HTTPError:
                        status = 0
                    if status == 200:
                        break
                    time.sleep(0.5)
                self.feedback.append((status, answer.json()["id"] if status == 200 else None))

    def between(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if start <= a[0] < end]


def p99(answers: list[Answer]) -> float:
    return statistics.quantiles([ms for _, ms, _, _ in answers], n=100)[98]


def roll(replicas: list[Replica], ports: list[int], model_tag: str, env: dict[str, str]) -> list[Replica]:
    """Replace each replica by one serving ``model_tag`` on a free slot, one at a time: start the new one,
    wait until it is ready, then stop the old one (it drains). Returns the new replicas."""
    current = list(replicas)
    for old in replicas:
        free = next(p for p in ports if p not in {r.port for r in current})
        current.append(start_replica(model_tag, env, free))
        old.stop()
        current.remove(old)
    return current


@dataclass
class Figures:
    """What one run of the procedure measured."""

    phases: dict[str, list[Answer]]  # the answers to requests started in each phase, in order
    feedback: list[tuple[int, int | None]]  # (status, stored id) of each report
    tries_of_killed: Counter[tuple[str, int]]  # requests started once the killed replica was dead that nginx
    # still sent it, counted by (what the replica answered, what the client got)
    last_try_s: float  # seconds from its death to the last of them
    followed: dict[str, list[str]]  # where replicas follow the alias: who answered on each, after each move


def run(
    old_tag: str,
    new_tag: str,
    env: dict[str, str],
    users: int = 32,
    calm_s: float = 10,
    promote: Callable[[], None] = lambda: None,
    roll_back: Callable[[], None] = lambda: None,
    follows: bool = False,
) -> Figures:
    """Two replicas of ``old_tag`` under load; ``promote``, roll to ``new_tag``; ``roll_back``, roll to
    ``old_tag``; then SIGKILL one. Tags may be the same alias, which ``promote`` and ``roll_back`` move.
    ``follows``: the replicas follow that alias (TWEETS_ALIAS_POLL_SECONDS in ``env``), so before the kill,
    ``promote`` and ``roll_back`` again with no rollout, each followed by what every replica answers."""
    ports = [free_port() for _ in range(SLOTS)]
    replicas = [start_replica(old_tag, env, port) for port in ports[:2]]
    marks: dict[str, float] = {}
    followed: dict[str, list[str]] = {}
    try:
        with running_nginx(ports) as nginx:
            with Load(nginx.url, users) as load:
                time.sleep(calm_s)
                marks["rolling out"] = time.time()
                promote()
                replicas = roll(replicas, ports, new_tag, env)
                marks["rolled out"] = time.time()
                time.sleep(calm_s / 2)
                marks["rolling back"] = time.time()
                roll_back()
                replicas = roll(replicas, ports, old_tag, env)
                marks["rolled back"] = time.time()
                time.sleep(calm_s / 2)
                for step, move in [("followed a promotion", promote), ("followed the rollback", roll_back)] * follows:
                    marks[step] = time.time()
                    move()
                    time.sleep(calm_s)
                    followed[step] = [answered_by(replica) for replica in replicas]
                killed = replicas.pop(0)
                marks["after a replica was killed"] = time.time()
                killed.kill()
                dead_at = time.time()
                time.sleep(calm_s + FAIL_TIMEOUT_S)  # past nginx's fail_timeout: its retry of the dead one too
            address = f"127.0.0.1:{killed.port}"
            tries = [
                (route.end, answered, route.status)
                for route in nginx.routed()
                if route.start >= dead_at
                for upstream, answered in route.tries
                if upstream == address
            ]
    finally:
        for replica in replicas:
            replica.stop()
    starts = [("before", 0.0), *marks.items()]
    ends = [start for _, start in starts[1:]] + [float("inf")]
    return Figures(
        phases={name: load.between(start, end) for (name, start), end in zip(starts, ends, strict=True)},
        feedback=load.feedback,
        tries_of_killed=Counter((answered, status) for _, answered, status in tries),
        last_try_s=max((end for end, _, _ in tries), default=dead_at) - dead_at,
        followed=followed,
    )


def answered_by(replica: Replica) -> str:
    """The ``model`` of the replica's answer, asked directly (not through nginx)."""
    return httpx.post(f"{replica.url}/predict", json={"tweet": "on time"}, timeout=30).json()["model"]


def failed(answers: list[Answer]) -> int:
    return sum(status != 200 for _, _, status, _ in answers)


def models(answers: list[Answer]) -> set[str]:
    return {model for _, _, status, model in answers if status == 200}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="the PostgreSQL URL the replicas share")
    parser.add_argument("--old", default="tweet-lstm@champion")
    parser.add_argument("--new", default="tweet-logreg@champion")
    args = parser.parse_args()
    env = {**os.environ, "TWEETS_FEEDBACK_DB_URL": args.database}
    figures = run(args.old, args.new, env)
    lines = [
        "# Several replicas behind nginx: a rolling model update and a killed replica, under load",
        "",
        f"Generated by `python -m benchmarks.replicas` on {date.today()}: two `bentoml serve` replicas (one "
        "worker each) behind nginx, sharing PostgreSQL, 32 users sending `/predict` back to back, all on the "
        f"same 2 cores. Rolled from `{args.old}` to `{args.new}` and back, a replica at a time.",
        "",
        "| phase | requests | failed | p99 ms | `model` answered |",
        "|---|---|---|---|---|",
        *[
            f"| {name} | {len(answers):,} | {failed(answers)} | {p99(answers):.0f} | "
            f"{', '.join(f'`{m}`' for m in sorted(models(answers)))} |"
            for name, answers in figures.phases.items()
        ],
        "",
        f"Feedback sent through nginx meanwhile: {len(figures.feedback)} reports (each sent again with its "
        f"idempotency key until acknowledged), {sum(status == 200 for status, _ in figures.feedback)} acknowledged.",
        "The killed replica's server and workers were all SIGKILLed. Once they were gone and its port refused "
        f"connections, nginx still tried it for {figures.tries_of_killed.total():,} requests that started later, "
        f"the last {figures.last_try_s:.1f} s after its death:",
        "",
        "| the dead replica answered | the client got | requests |",
        "|---|---|---|",
        *[
            f"| {answered}{' (connection refused or cut)' if answered == '502' else ''} | {status} | {count:,} |"
            for (answered, status), count in sorted(figures.tries_of_killed.items())
        ],
        "",
    ]
    path = Path(__file__).parent / "results" / "REPLICAS.md"
    stamped(path, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    with leaves_no_process():
        main()
