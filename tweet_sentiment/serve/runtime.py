"""How a worker runs its model: unbatched calls, model threads, garbage collection."""

import gc
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import bentoml
from starlette.concurrency import run_in_threadpool

Answer = TypeVar("Answer")
PredictTweets = Callable[[list[str]], Sequence[Answer]]
AsyncPredictTweets = Callable[[list[str]], Awaitable[list[Answer]]]


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
