"""What the server needs besides the model, and can live without for a while: the feedback store, the
prediction log's disk. An outage is counted, logged as one line when it starts, a count a minute while it
lasts and one line when it ends (never a line per request), and named by /status."""

import logging
import threading
import time

import bentoml

log = logging.getLogger(__name__)

dependency_failures_total = bentoml.metrics.Counter(
    name="tweet_dependency_failures_total",
    documentation="Failed calls to a dependency: a feedback answered 503, a prediction-log record dropped",
    labelnames=["dependency"],
)


class Dependency:
    """One dependency's health, shared by the threads of a worker."""

    def __init__(self, name: str, report_every_s: float = 60.0) -> None:
        self.name, self.report_every_s = name, report_every_s
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._failures = self._unreported = 0
        self._reported_at = 0.0

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    def failed(self, error: BaseException | None) -> None:
        dependency_failures_total.labels(dependency=self.name).inc()
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            self._unreported += 1
            if self._down_since is None:
                self._down_since = self._reported_at = now
                self._unreported = 0
                log.warning("%s unavailable: %s", self.name, error)
            elif now - self._reported_at >= self.report_every_s:
                log.warning("%s still unavailable: %d more failures", self.name, self._unreported)
                self._reported_at, self._unreported = now, 0

    def succeeded(self) -> None:
        if self._down_since is None:  # the usual case, without taking the lock
            return
        with self._lock:
            if self._down_since is None:
                return
            seconds, failures = time.monotonic() - self._down_since, self._failures
            self._down_since, self._failures = None, 0
        log.warning("%s back after %.0f s, %d failures", self.name, seconds, failures)
