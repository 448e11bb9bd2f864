"""Every use of BentoML's, uvicorn's and circus' internals, in one place, for versions pinned in
requirements-serve.lock; ``check_versions`` stops a server whose installed versions differ. Each patch says
why no documented API does the job, and the test that pins its behaviour.
"""

import atexit
import collections
import itertools
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable, Sequence
from importlib.metadata import version
from pathlib import Path

import bentoml
import bentoml.serving
import numpy as np
import prometheus_client.values
from _bentoml_impl.server.app import ServiceAppFactory
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.marshal.dispatcher import CorkDispatcher, NonBlockSema
from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware
from bentoml.exceptions import BentoMLException, ServiceUnavailable
from circus.exc import ConflictError
from circus.sighandler import SysHandler
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from pydantic import ValidationError
from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Protocol

from tweet_sentiment.core.config import settings
from tweet_sentiment.serve.guards import OVERLOADED
from tweet_sentiment.serve.runtime import Answer, AsyncPredictTweets, PredictTweets

# The versions every patch here was written and tested for (requirements-serve.lock pins the same).
# circus, BentoML's process manager, is installed as the kantoku distribution.
PATCHED_VERSIONS = {"bentoml": "1.4.40", "uvicorn": "0.55.0", "kantoku": "0.18.3", "prometheus-client": "0.26.0"}


class UnsupportedVersion(RuntimeError):
    """An installed package is not the version this module's patches were written for."""


def check_versions() -> None:
    """Stop, naming them, if the installed bentoml, uvicorn, circus or prometheus-client are not the versions
    the patches below were written for: a changed internal could otherwise break a patch silently."""
    installed = {name: version(name) for name in PATCHED_VERSIONS}
    if wrong := {name: v for name, v in installed.items() if v != PATCHED_VERSIONS[name]}:
        found = ", ".join(f"{name} {v} (written for {PATCHED_VERSIONS[name]})" for name, v in wrong.items())
        raise UnsupportedVersion(
            f"tweet_sentiment/serve/internals.py patches internals of {found}: install requirements-serve.lock, "
            "or check each patch and its test against the new version and update PATCHED_VERSIONS"
        )


def prepare_server(header_timeout_s: float, drain_s: float) -> None:
    """Every patch a server needs, applied where the service is imported (the serving process and each worker),
    after checking the versions they were written for."""
    check_versions()
    private_prometheus_dir()  # this server's metrics are its own, even beside others on the host
    log_client_errors_in_one_line()
    report_worker_deaths()
    stop_on_every_sigterm()
    tune_connections(header_timeout_s, drain_s)
    trace_only_when_sampled()


def tune_connections(header_timeout_s: float, drain_s: float) -> None:
    """Two connection rules uvicorn (which BentoML runs) lacks, set on its httptools protocol (the one used
    when httptools is installed, as here); no BentoML or uvicorn setting reaches either:

    - a connection whose request headers are not complete ``header_timeout_s`` after it opened or its
      previous response ended is closed (nginx's ``client_header_timeout``). Uvicorn times out only the
      wait between requests, and restarts even that on every byte, so idle and slowloris connections held
      a file descriptor forever;
    - after SIGTERM an idle keep-alive connection stays open for ``drain_s``: a request sent on it meanwhile
      is answered with ``Connection: close``. Uvicorn closed it at once, so such a request met a closed
      connection, and a client or load balancer could not tell whether it was handled.

    And a request the HTTP parser cannot read (``Content-Length: abc``) is answered 400 ``{"error": ...}``,
    the service's one error shape, where uvicorn writes plain text.

    Pinned by tests/live/test_floods.py::test_silent_and_slowloris_connections_are_closed,
    tests/live/test_faults.py::test_a_request_on_a_kept_alive_connection_after_sigterm_is_answered_then_closed and
    tests/live/test_bad_input.py::test_a_request_the_http_parser_cannot_read_is_a_json_400.
    """

    already = hasattr(Protocol, "header_timeout_s")
    Protocol.header_timeout_s, Protocol.drain_s = header_timeout_s, drain_s
    if already:
        return
    connection_made, message_begin = Protocol.connection_made, Protocol.on_message_begin
    headers_complete, shutdown = Protocol.on_headers_complete, Protocol.shutdown

    def arm_header_deadline(protocol) -> None:
        if deadline := getattr(protocol, "header_deadline", None):
            deadline.cancel()
        protocol.header_deadline = protocol.loop.call_later(protocol.header_timeout_s, protocol.transport.close)

    def idle(protocol) -> bool:
        return protocol.cycle is None or protocol.cycle.response_complete

    def on_connection_made(self, transport) -> None:
        connection_made(self, transport)
        arm_header_deadline(self)

    def on_message_begin(self) -> None:
        message_begin(self)
        arm_header_deadline(self)

    def on_headers_complete(self) -> None:
        self.header_deadline.cancel()
        headers_complete(self)
        if getattr(self, "draining", False):
            self.cycle.keep_alive = False  # answered, then closed

    def drain(self) -> None:
        if not idle(self):
            return shutdown(self)  # a response under way: uvicorn closes the connection after it
        self.draining = True
        self.loop.call_later(self.drain_s, lambda: idle(self) and self.transport.close())

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": f"malformed HTTP request: {msg}"}).encode()
        head = [STATUS_LINE[400], *(b"%s: %s\r\n" % header for header in self.server_state.default_headers)]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body)]
        self.transport.write(b"".join([*head, b"connection: close\r\n\r\n", body]))
        self.transport.close()

    Protocol.connection_made, Protocol.on_message_begin = on_connection_made, on_message_begin
    Protocol.on_headers_complete, Protocol.shutdown = on_headers_complete, drain
    Protocol.send_400_response = send_400_response


def trace_only_when_sampled() -> None:
    """Leave BentoML's OpenTelemetry middleware out while tracing samples nothing (the service's
    ``tracing.sample_rate`` unset or 0, BentoML's default): it starts a span for every request only to drop it,
    the costliest middleware of the stack (benchmarks/results/MIDDLEWARES.md). With a sample rate configured
    (``BENTOML_CONFIG_OPTIONS="services.TweetSentiment.tracing.sample_rate=0.1"``) it stays, and its spans reach
    BentoML's exporter, and Azure's with APPLICATIONINSIGHTS_CONNECTION_STRING. Without it, answers carry no
    X-BentoML-Request-ID header (each answer's ``id`` names it). No setting removes the middleware; this wraps
    the property that lists them. Pinned by tests/live/test_monitoring.py::test_tracing_is_left_out_unless_sampled.
    """
    listed = getattr(ServiceAppFactory.middlewares.fget, "lists", ServiceAppFactory.middlewares.fget)

    def middlewares(self) -> list:
        found = listed(self)
        if BentoMLContainer.config.tracing.sample_rate.get():
            return found
        return [middleware for middleware in found if middleware.cls is not OpenTelemetryMiddleware]

    middlewares.lists = listed
    ServiceAppFactory.middlewares = property(middlewares)


def count_only_known_paths(paths: Iterable[str]) -> None:
    """Keep BentoML's request metrics to ``paths``: requests to any other path (all 404) are not counted.

    BentoML labels each request's series with its raw path, so every path a client invents became new
    series in /metrics and in the worker's memory, without bound. No setting limits it (its skip list
    matches prefixes); this wraps its metrics middleware. Pinned by
    tests/live/test_floods.py::test_metrics_keep_a_bounded_set_of_series_whatever_paths_clients_send.
    """
    metered = RunnerTrafficMetricsMiddleware
    count = getattr(metered.__call__, "counts", metered.__call__)  # the original, if wrapped already
    known = frozenset(paths)

    async def call(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] not in known:
            return await self.app(scope, receive, send)
        await count(self, scope, receive, send)

    call.counts = count
    RunnerTrafficMetricsMiddleware.__call__ = call


def adaptive_batching(
    predict: PredictTweets[Answer],
    max_batch_size: int,
    deadline_ms: int,
    costs: Sequence[tuple[int, float]],
    max_concurrent_batches: int = 3,
) -> AsyncPredictTweets[Answer]:
    """Merge concurrent calls of the result, from any route, into calls of ``predict`` of up to ``max_batch_size``.

    This is BentoML's adaptive batching (its CorkDispatcher, the one behind ``@bentoml.api(batchable=True)``)
    shared by two routes, because a batchable API takes a list per request: ``/predict`` (``{"tweet": ...}``)
    could not be one, and ran unbatched at a quarter of ``/predict_batch``'s throughput. One queue also merges
    single tweets sent to either route into the same model calls. Three batches may run at once (BentoML's
    default is one): with one model thread each (the service's default), two compute on the two cores, GIL
    released, while the third does its Python work (language, answers, log): the most 32-tweet requests a
    second of the counts tried (docs/serving.md). A request longer than ``max_batch_size`` is split across calls.

    A request is admitted or answered 503 when it arrives, by its size in tweets (``AdmittingDispatcher``).
    ``costs`` (calls of n tweets, seconds each, measured at warm-up; one of them a full call) are what admission
    predicts with, and the first samples of BentoML's latency model, which otherwise starts from a guess.

    Pinned by tests/unit/test_serving.py.
    """

    def predict_merged(requests: Sequence[list[str]]) -> list[list[Answer]]:
        answers = list(predict([tweet for request in requests for tweet in request]))
        ends = itertools.accumulate(len(request) for request in requests)
        return [answers[end - len(request) : end] for request, end in zip(requests, ends, strict=True)]

    return AdmittingDispatcher(deadline_ms / 1000, costs, max_batch_size, max_concurrent_batches)(predict_merged)


def overloaded() -> Answer:
    raise ServiceUnavailable(OVERLOADED)


class AdmittingDispatcher(CorkDispatcher):
    """BentoML's dispatcher, with its shedding replaced: a request is judged whole, in tweets, when it arrives.

    It is admitted if the tweets admitted before it and not yet answered, and its own, would be answered within
    ``deadline_s``; otherwise it is answered 503 at once, before any work. An admitted request is never shed; one
    alone is always admitted (waiting cannot make it faster). The prediction is a line, seconds a call against its
    tweets, fitted on the last calls as they ran (at first on ``costs``, timed at warm-up), ``calls_at_once`` at a
    time: calls run slower together under load, and the prediction with them.

    BentoML's dispatcher sheds the request at the head of its queue when its latency model, of requests and not
    tweets, predicts it late: a long request was shed part by part, after waiting, and after its first parts had
    been computed. Its own shedding is left here only for a request already past the request timeout. Pinned by
    tests/unit/test_serving.py::test_an_overloaded_server_answers_whole_requests_and_sheds_before_any_work.
    """

    def __init__(
        self, deadline_s: float, costs: Sequence[tuple[int, float]], max_batch_size: int, calls_at_once: int
    ) -> None:
        timeout_ms = int(settings().request_timeout_seconds * 1000)
        options = {"shared_sema": NonBlockSema(calls_at_once), "fallback": overloaded, "get_batch_size": len}
        super().__init__(timeout_ms, max_batch_size, **options)
        self.optimizer.o_stat.extend((n, seconds, 0.0) for n, seconds in costs)  # (n, duration, wait)
        self.optimizer.trigger_refresh()
        self.deadline_s, self.calls_at_once = deadline_s, calls_at_once
        self.calls: collections.deque[tuple[int, float]] = collections.deque(costs, maxlen=50)  # (tweets, seconds)
        self.tweet_s, self.call_s = self.fit()
        self.admitted_tweets = 0  # admitted and not yet answered

    def fit(self) -> tuple[float, float]:
        """Seconds a tweet and a call, the least-squares line through the last calls."""
        tweets, seconds = np.array(self.calls, dtype=float).T
        (tweet_s, call_s), *_ = np.linalg.lstsq(np.stack([tweets, np.ones_like(tweets)], 1), seconds, rcond=None)
        return max(tweet_s, 0.0), max(call_s, 0.0)

    def predicted_s(self, tweets: int) -> float:
        """Seconds to answer ``tweets``, in as few calls as they fit, so many at a time."""
        calls = math.ceil(tweets / self.max_batch_size)
        return (tweets * self.tweet_s + calls * self.call_s) / self.calls_at_once

    async def inbound_call(self, data: list[str]):
        if self.admitted_tweets and self.predicted_s(self.admitted_tweets + len(data)) > self.deadline_s:
            return ServiceUnavailable(OVERLOADED)  # BentoML's wrapper raises what it returns
        self.admitted_tweets += len(data)
        try:
            return await super().inbound_call(data)
        finally:
            self.admitted_tweets -= len(data)

    async def outbound_call(self, inputs_info, training: bool = False) -> None:
        start = time.perf_counter()
        await super().outbound_call(inputs_info, training)
        self.calls.append((sum(len(job.data) for job in inputs_info), time.perf_counter() - start))
        self.tweet_s, self.call_s = self.fit()


worker_deaths_total = bentoml.metrics.Counter(
    name="tweet_worker_deaths_total",
    documentation="Workers that died while the server was running (not stopped by it), by signal or exit code",
    labelnames=["cause"],
)


def report_worker_deaths() -> None:
    """Log a worker that dies while the server runs at ERROR, with its pid and signal, and count it; call in
    the serving process, before it starts its workers.

    BentoML's process manager (circus) restarts such a worker and logs nothing above DEBUG: only the new
    worker's start-up lines showed that one had died. Circus calls a watcher's ``after_reap`` hook with the
    pid and exit code of every process it reaps; this sets that hook on the watcher of the service's workers.

    Pinned by tests/live/test_bad_input.py (a worker killed).
    """

    create = bentoml.serving.create_watcher
    if getattr(create, "reports_deaths", False):
        return

    def create_watcher(name: str, args: list[str], **options):
        watcher = create(name, args, **options)
        if name == "service":
            watcher.hooks["after_reap"] = _worker_reaped
        return watcher

    create_watcher.reports_deaths = True
    bentoml.serving.create_watcher = create_watcher


def _worker_reaped(watcher, process_pid: int, exit_code: int | None, **_) -> bool:
    if watcher.is_active():  # not a worker the server itself was stopping
        cause = signal.Signals(-exit_code).name if exit_code and exit_code < 0 else f"exit code {exit_code}"
        then = "a new one starts" if watcher.respawn else "it is not restarted"
        logging.getLogger(__name__).error("worker pid %d died (%s); %s", process_pid, cause, then)
        worker_deaths_total.labels(cause=cause).inc()
    return True


def stop_on_every_sigterm() -> None:
    """Stop the server on a SIGTERM or SIGINT that arrives while its process manager is busy; call in the serving
    process, before it starts.

    Circus turns the signal into a ``quit`` command, which it refuses (a ConflictError, answered to no one) while
    another command runs, such as the restart of a worker that died: the signal was lost, and the server ran on
    until a SIGKILL (circus-tent/circus#935, open). Here a refused stop is tried again every 0.1 s.

    Pinned by tests/live/test_faults.py (SIGTERM to the server just after a worker died).
    """
    SysHandler.quit = _quit_when_free


def _quit_when_free(handler: SysHandler) -> None:
    handler.controller.loop.add_callback_from_signal(_stop_when_free, handler.controller.arbiter)


def _stop_when_free(arbiter) -> None:
    try:
        arbiter.stop()
    except ConflictError:  # raised before the stop starts: another command holds the arbiter
        arbiter.loop.call_later(0.1, _stop_when_free, arbiter)


CLIENT_ERROR_LOGGER = "bentoml._internal.server.http_app"  # where BentoML logs each failed request, traceback included


class OneLineClientErrors(logging.Filter):
    """A client's error (bad input: 4xx) is one WARNING line, ``client error on ROUTE [METHOD]: STATUS REASON``;
    the server's own errors keep their traceback. BentoML logs both alike at ERROR, with the traceback. Pinned by
    tests/live/test_bento.py::test_exported_bento_serves_its_champion_from_an_empty_store_without_mlflow."""

    def filter(self, record: logging.LogRecord) -> bool:

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            status, reason = 400, f"{error.error_count()} validation error(s): {error.errors()[0]['msg']}"
        elif isinstance(error, BentoMLException) and error.error_code < 500:
            status, reason = int(error.error_code), str(error)
        else:
            return True
        path, method = record.args
        record.msg, record.args = "client error on %s [%s]: %d %s", (path, method, status, reason)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


def log_client_errors_in_one_line() -> None:
    logging.getLogger(CLIENT_ERROR_LOGGER).addFilter(OneLineClientErrors())


METRICS_DIR_PREFIX = "tweet-sentiment-metrics-"


def private_prometheus_dir() -> str:
    """Give this server its own Prometheus multiprocess folder; call when the service module is imported.

    BentoML puts every server's in one folder under its home and empties it when a server starts, so
    servers sharing a host would report each other's metrics and lose their own. The serving process
    takes a fresh folder, named after its process id, before BentoML prepares it; its workers inherit it in
    PROMETHEUS_MULTIPROC_DIR. The folder goes when the process exits; those of killed servers go when the
    next one starts.

    Pinned by tests/live/test_monitoring.py::test_servers_on_one_host_report_their_own_metrics.
    """

    folder = settings().prometheus_multiproc_dir
    if folder is None:
        remove_dead_servers_metrics(Path(tempfile.gettempdir()))
        folder = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    BentoMLContainer.prometheus_multiproc_dir.set(folder)
    if prometheus_client.values.ValueClass is prometheus_client.values.MutexValue:
        # The serving process's own metrics (a worker's death: report_worker_deaths) go to the folder too, where
        # the workers' /metrics reads them: prometheus_client chose its single-process mode when it was imported.
        # (Workers start with the folder in their environment: they are in multiprocess mode already.)
        os.environ.update(PROMETHEUS_MULTIPROC_DIR=folder)
        prometheus_client.values.ValueClass = prometheus_client.values.get_value_class()
    return folder


def remove_dead_servers_metrics(parent: Path) -> None:
    """Remove the metrics folders of servers whose process is gone."""
    for folder in parent.glob(f"{METRICS_DIR_PREFIX}*-*"):
        pid = folder.name.removeprefix(METRICS_DIR_PREFIX).split("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        pass
    return True
