"""Serving helpers kept out of service.py so it reads at a glance: request guards, logs, metrics, GC."""

import gc
import hmac
import itertools
import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import bentoml
from bentoml._internal.monitoring.default import DefaultMonitor  # pinned BentoML; a test reads the log it writes
from starlette.concurrency import run_in_threadpool

from tweet_sentiment.config import settings

HEALTH_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})


async def _answer(send, status: int, error: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), *headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequireToken:
    """ASGI middleware: the given paths need ``Authorization: Bearer <token>``, else 401 (compared in constant time)."""

    def __init__(self, app, token: str, paths: frozenset[str]) -> None:
        self.app, self.expected, self.paths = app, f"Bearer {token}".encode(), paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                return await _answer(send, 401, "missing or wrong token", [(b"www-authenticate", b"Bearer")])
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
                return await _answer(send, 415, "send the body as JSON (Content-Type: application/json)")
        await self.app(scope, receive, send)


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
            return await _answer(send, 503, "server overloaded, retry later", [(b"retry-after", b"1")])
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


GUARD_RESPONSES = {
    401: "POST /feedback without the right `Authorization: Bearer <token>` (only when TWEETS_FEEDBACK_TOKEN is set)",
    415: "a body declared as anything but application/json",
    503: "overloaded: past max_concurrency requests in flight; retry after the Retry-After header",
}


def document_guard_responses() -> None:
    """Add the answers of the middlewares above to the OpenAPI of every route.

    BentoML documents 400, 404 and 500 from one module-level table and offers no hook for more, so
    this extends that table (pinned BentoML; a test checks the documents).
    """
    from _bentoml_sdk.service import openapi
    from bentoml._internal.service.openapi.specification import MediaType, Response, Schema

    error = Schema(type="object", properties={"error": Schema(type="string")}, required=["error"])
    for status, description in GUARD_RESPONSES.items():
        content = {"application/json": MediaType(schema=error)}
        openapi.error_responses[status] = Response(description=description, content=content)


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
    released, while the third does its Python work (language, answers, log). Measured on 32-tweet requests
    (README "Benchmarks"): one batch at a time 205 req/s, two 258, three 329 with one model thread (two
    batches of one thread: 287; four: 319). A request longer than ``max_batch_size`` is split across calls;
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
    record at build time as a path of the build machine.
    """

    def __init__(self, name: str, **options) -> None:
        super().__init__(name, **(options | {"log_path": str(settings().monitor_dir)}))


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


def private_prometheus_dir() -> str:
    """Give this server its own Prometheus multiprocess folder; call when the service module is imported.

    BentoML puts every server's in one folder under its home and empties it when a server starts, so
    servers sharing a host would report each other's metrics and lose their own. The serving process
    takes a fresh folder, before BentoML prepares it; its workers inherit it in PROMETHEUS_MULTIPROC_DIR.
    """
    from bentoml._internal.configuration.containers import BentoMLContainer

    folder = settings().prometheus_multiproc_dir or tempfile.mkdtemp(prefix="tweet-sentiment-metrics-")
    BentoMLContainer.prometheus_multiproc_dir.set(folder)
    return folder


def tune_gc_for_serving(young_threshold: int = 50_000) -> None:
    """Garbage-collector settings for a server process; call once the model is loaded and warm.

    Measured on the LSTM service, 64 users, with CPython's defaults: full collections every ~2 s,
    each walking ~1.1M objects (the model runtime, the framework) for ~0.4 s. The objects of
    the requests in flight survive the frequent young collections (every 700 allocations), get
    promoted, and so keep triggering full ones. Hence:

    - ``gc.freeze()``: what is alive now stays out of every later collection;
    - a young threshold of 50,000: a request's objects are freed by reference counting before a
      collection runs, so few are promoted and full collections become rare.

    Result, one A/B on fresh servers: 860 -> 1,240 requests/s and p99 540 -> 86 ms (README, Benchmarks).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, *gc.get_threshold()[1:])
