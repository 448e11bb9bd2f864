"""Serving helpers kept out of service.py so it reads at a glance: request guards, logs, metrics, GC."""

import asyncio
import atexit
import gc
import hmac
import itertools
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import TypeVar

import bentoml
import prometheus_client.values
from bentoml._internal.monitoring.default import DefaultMonitor  # pinned BentoML; a test reads the log it writes
from starlette.concurrency import run_in_threadpool

from tweet_sentiment.config import settings
from tweet_sentiment.dependencies import Dependency

HEALTH_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
RETRY_SOON = {"Retry-After": "1"}  # an overload passes within a second or so: try again then


def error_response(status: int, error: str, headers: dict[str, str] | None = None):
    """The service's one error shape, ``{"error": ...}``: a route returns it (BentoML renders a raised 4xx as a
    one-element array and replaces a 5xx's reason with a generic sentence), a middleware sends it (a Starlette
    response is an ASGI app)."""
    from starlette.responses import JSONResponse

    return JSONResponse({"error": error}, status_code=status, headers=headers)


class RequireToken:
    """ASGI middleware: the given paths need ``Authorization: Bearer <token>``, else 401 (compared in constant time)."""

    def __init__(self, app, token: str, paths: frozenset[str]) -> None:
        self.app, self.expected, self.paths = app, f"Bearer {token}".encode(), paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                return await error_response(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"})(
                    scope, receive, send
                )
        await self.app(scope, receive, send)


class JSONOnly:
    """ASGI middleware: a POST whose body is declared as anything but JSON gets 415, not a framework 500.

    (BentoML answers 500 to ``multipart/form-data`` without a boundary; every route here takes JSON.)
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            declared = dict(scope["headers"]).get(b"content-type", b"application/json")
            if declared.split(b";")[0].strip().lower() != b"application/json":
                answer = error_response(415, "send the body as JSON (Content-Type: application/json)")
                return await answer(scope, receive, send)
        await self.app(scope, receive, send)


class JSONErrors:
    """ASGI middleware: an error answered in another shape by the framework (Starlette's plain-text 404 for an
    unknown path, 405 for a wrong method) is sent as ``{"error": ...}``, the service's one error shape; its
    other headers (``Allow``) are kept."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held: dict | None = None  # the start of a response being replaced

        async def send_json_errors(message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] >= 400:
                headers = message.get("headers", [])
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if not content_type.startswith(b"application/json"):
                    held = message
                    return
            if held is None:
                return await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                status = held["status"]
                body = json.dumps({"error": f"{HTTPStatus(status).phrase.lower()}: {scope['method']} {scope['path']}"})
                kept = [(k, v) for k, v in held["headers"] if k.lower() not in (b"content-type", b"content-length")]
                headers = [*kept, (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body.encode()})

        await self.app(scope, receive, send_json_errors)


class LoadShedding:
    """ASGI middleware: past ``max_concurrency`` requests in flight, answer 503 with Retry-After at once.

    Shedding early keeps latency bounded for the requests that are admitted, and the server recovers
    as soon as load drops. Health and metrics paths are never shed, so probes keep working.
    (BentoML's own ``traffic.max_concurrency`` answers 429, which tells clients they did wrong.)
    """

    def __init__(self, app, max_concurrency: int) -> None:
        self.app = app
        self.max_concurrency = max_concurrency
        self.in_flight = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_PATHS:
            return await self.app(scope, receive, send)
        if self.in_flight >= self.max_concurrency:
            return await error_response(503, "server overloaded, retry later", RETRY_SOON)(scope, receive, send)
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class BodyLimits:
    """ASGI middleware: a request body must fit in ``max_bytes`` and arrive whole within ``timeout_s``.

    A declared Content-Length over the limit is answered 413 before a byte of the body is read; a body
    that grows past it while streaming, 413 as soon as it does; one still incomplete after ``timeout_s``,
    408. The inner app sees the request only once its body is whole, so clients that send slowly hold no
    place in the in-flight limit (LoadShedding, inside this) and cannot starve the others.
    """

    def __init__(self, app, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        close = {"Connection": "close"}  # the rest of a refused body is never read: drop the connection
        too_large = error_response(413, f"the body is over {self.max_bytes:,} bytes", close)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            return await too_large(scope, receive, send)
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunks.append(message.get("body", b""))
                    size += len(chunks[-1])
                    if size > self.max_bytes:
                        return await too_large(scope, receive, send)
                    if not message.get("more_body"):
                        break
        except TimeoutError:
            late = error_response(408, f"the body did not arrive within {self.timeout_s:g} s", close)
            return await late(scope, receive, send)
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay():
            nonlocal whole
            if whole is None:
                return await receive()  # a disconnect, for the app to notice
            message, whole = whole, None
            return message

        await self.app(scope, replay, send)


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
    """
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Protocol

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


def count_only_known_paths(paths: Iterable[str]) -> None:
    """Keep BentoML's request metrics to ``paths``: requests to any other path (all 404) are not counted.

    BentoML labels each request's series with its raw path, so every path a client invents became new
    series in /metrics and in the worker's memory, without bound. No setting limits it (its skip list
    matches prefixes); this wraps its metrics middleware.
    """
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware as Metered

    count = getattr(Metered.__call__, "counts", Metered.__call__)  # the original, if wrapped already
    known = frozenset(paths)

    async def call(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] not in known:
            return await self.app(scope, receive, send)
        await count(self, scope, receive, send)

    call.counts = count
    Metered.__call__ = call


ERROR_RESPONSES = {
    400: "invalid input: `detail` lists what failed validation",
    401: "POST /feedback without the right `Authorization: Bearer <token>` (only when TWEETS_FEEDBACK_TOKEN is set)",
    408: "the body did not arrive within TWEETS_BODY_TIMEOUT_SECONDS",
    413: "a body over TWEETS_MAX_BODY_BYTES, refused before it is read",
    415: "a body declared as anything but application/json",
    500: "an error of the server's own",
    503: "overloaded, or a dependency down; retry after the Retry-After header",
}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "array", "items": {"type": "object"}, "description": "validation errors (400 only)"},
    },
    "required": ["error"],
}


def document_the_api_as_it_answers() -> None:
    """Make the OpenAPI document say what the server does, so clients (and schemathesis) can trust it:

    - every error, from BentoML or the middlewares above, in the one shape ``{"error": ..., "detail"?: [...]}``;
    - a request body required where it has required fields; a field that may be null is ``nullable``
      (BentoML drops the null of ``X | None``, or leaves 3.1's ``{"type": "null"}`` in a 3.0 document).

    BentoML builds the document in one function and offers no hook, so this rewrites its output
    (pinned BentoML; a test runs schemathesis with every check against the live document).
    """
    from bentoml._internal.service.openapi.specification import OpenAPISpecification

    if getattr(OpenAPISpecification.asdict, "rewrites", False):
        return
    unstructure = OpenAPISpecification.asdict

    def asdict(spec) -> dict:
        document = unstructure(spec)
        for item in document["paths"].values():
            for operation in item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                for status, description in ERROR_RESPONSES.items():
                    content = {"application/json": {"schema": ERROR_SCHEMA}}
                    operation["responses"][str(status)] = {"description": description, "content": content}
                if body := operation.get("requestBody"):
                    schema = body["content"]["application/json"]["schema"]
                    body["required"] = bool(schema.get("required"))  # /status takes none: no body is fine
        mark_nullable(document)
        return document

    asdict.rewrites = True
    OpenAPISpecification.asdict = asdict


def mark_nullable(schema) -> None:
    """OpenAPI 3.0's ``nullable: true`` on every property that may be null (its default is null, or it is
    pydantic's ``anyOf: [X, {"type": "null"}]``, which 3.0 does not know), at any depth."""
    if isinstance(schema, dict):
        for value in schema.get("properties", {}).values():
            if not isinstance(value, dict):
                continue
            choices = value.get("anyOf", [])
            if {"type": "null"} in choices:
                choices.remove({"type": "null"})
                if len(choices) == 1:
                    value.update(value.pop("anyOf")[0])
                value["nullable"] = True
            if "default" in value and value["default"] is None:
                value["nullable"] = True
        for value in schema.values():
            mark_nullable(value)
    elif isinstance(schema, list):
        for value in schema:
            mark_nullable(value)


Answer = TypeVar("Answer")
PredictTweets = Callable[[list[str]], Sequence[Answer]]
AsyncPredictTweets = Callable[[list[str]], Awaitable[list[Answer]]]


def adaptive_batching(
    predict: PredictTweets[Answer], max_batch_size: int, max_latency_ms: int, max_concurrent_batches: int = 3
) -> AsyncPredictTweets[Answer]:
    """Merge concurrent calls of the result, from any route, into calls of ``predict`` of up to ``max_batch_size``.

    This is BentoML's adaptive batching (its CorkDispatcher, the one behind ``@bentoml.api(batchable=True)``)
    shared by two routes, because a batchable API takes a list per request: ``/predict`` (``{"tweet": ...}``)
    could not be one, and ran unbatched at a quarter of ``/predict_batch``'s throughput. One queue also merges
    single tweets sent to either route into the same model calls. Three batches may run at once (BentoML's
    default is one): with one model thread each (the service's default), two compute on the two cores, GIL
    released, while the third does its Python work (language, answers, log): the most 32-tweet requests a
    second of the counts tried (docs/serving.md). A request longer than ``max_batch_size`` is split across calls;
    one the dispatcher predicts would exceed ``max_latency_ms`` is answered 503.
    """
    from bentoml._internal.marshal.dispatcher import CorkDispatcher, NonBlockSema
    from bentoml.exceptions import ServiceUnavailable

    def overloaded() -> list[Answer]:
        raise ServiceUnavailable("server overloaded, retry later")

    def predict_merged(requests: Sequence[list[str]]) -> list[list[Answer]]:
        answers = list(predict([tweet for request in requests for tweet in request]))
        ends = itertools.accumulate(len(request) for request in requests)
        return [answers[end - len(request) : end] for request, end in zip(requests, ends, strict=True)]

    dispatcher = CorkDispatcher(
        max_latency_ms,
        max_batch_size,
        shared_sema=NonBlockSema(max_concurrent_batches),
        fallback=overloaded,
        get_batch_size=len,
    )
    return dispatcher(predict_merged)


def unbatched(predict: PredictTweets[Answer]) -> AsyncPredictTweets[Answer]:
    """Each call of the result runs ``predict`` on its own, in the thread pool (batching switched off)."""

    async def call(tweets: list[str]) -> list[Answer]:
        return list(await run_in_threadpool(predict, tweets))

    return call


def limit_model_threads(threads: int | None) -> None:
    """Give the model runtime this many threads per worker (None: one per core); call before the model loads.

    Only in a serving worker (not in a test or a script importing the service): ONNX Runtime sessions
    (tweet_model.runtime) and OpenMP read OMP_NUM_THREADS when they are created.
    """
    if threads is None or bentoml.server_context.worker_index is None:
        return
    os.environ.update(OMP_NUM_THREADS=str(threads))


class PredictionLog(DefaultMonitor):
    """BentoML's default monitor (rotating JSON files) in TWEETS_MONITOR_DIR, read in the server.

    Named as the service's monitoring ``type`` instead of a ``log_path`` option, which bento.yaml would
    record at build time as a path of the build machine. A record that cannot be written (a full disk, an
    unwritable folder) is counted as a failure of the ``prediction_log`` dependency instead of printing a
    traceback per model call; the prediction is answered all the same.
    """

    health = Dependency("prediction_log")

    def __init__(self, name: str, **options) -> None:
        super().__init__(name, **(options | {"log_path": str(settings().monitor_dir)}))
        self._failed = False

    def _init_logger(self) -> None:
        super()._init_logger()
        for logger in (self.data_logger, self.schema_logger):
            for handler in logger.handlers:
                handler.handleError = self._dropped

    def _dropped(self, record_or_error: logging.LogRecord | BaseException) -> None:
        self._failed = True
        self.health.failed(record_or_error if isinstance(record_or_error, BaseException) else sys.exc_info()[1])

    def stop_record(self) -> None:
        self._failed = False
        try:
            super().stop_record()
        except (OSError, ValueError) as error:  # no folder or file for the log (logging's dictConfig: ValueError)
            self.data_logger = self.schema_logger = None  # set up again on the next record
            self._dropped(error)
        if not self._failed:
            self.health.succeeded()


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
    """
    import bentoml.serving

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


CLIENT_ERROR_LOGGER = "bentoml._internal.server.http_app"  # where BentoML logs each failed request, traceback included


class OneLineClientErrors(logging.Filter):
    """A client's error (bad input: 4xx) is one WARNING line, ``client error on ROUTE [METHOD]: STATUS REASON``;
    the server's own errors keep their traceback. BentoML logs both alike at ERROR, with the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from bentoml.exceptions import BentoMLException
        from pydantic import ValidationError

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
    """
    from bentoml._internal.configuration.containers import BentoMLContainer

    folder = settings().prometheus_multiproc_dir
    if folder is None:
        remove_dead_servers_metrics(Path(tempfile.gettempdir()))
        folder = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    BentoMLContainer.prometheus_multiproc_dir.set(folder)
    # The serving process's own metrics (a worker's death: report_worker_deaths) go to the folder too, where
    # the workers' /metrics reads them: prometheus_client chose its single-process mode when it was imported.
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


def tune_gc_for_serving(young_threshold: int = 50_000) -> None:
    """Garbage-collector settings for a server process; call once the model is loaded and warm.

    With CPython's defaults, under load, full collections ran every few seconds, each walking the
    million-odd objects of the model runtime and the framework (docs/serving.md). The objects of
    the requests in flight survive the frequent young collections (every 700 allocations), get
    promoted, and so keep triggering full ones. Hence:

    - ``gc.freeze()``: what is alive now stays out of every later collection;
    - a young threshold of 50,000: a request's objects are freed by reference counting before a
      collection runs, so few are promoted and full collections become rare.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, *gc.get_threshold()[1:])
