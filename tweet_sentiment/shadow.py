"""Shadow scoring: a challenger scores the tweets the champion answered, off the request path.

The champion answers every request alone. Each of its model calls is then offered to the challenger, which
runs in a process of its own at the lowest CPU priority (Linux's SCHED_IDLE): the two never share Python's
interpreter lock (in a thread of the server, the challenger slowed the champion's requests as much with a
cheap model as with an expensive one: docs/serving.md). Calls waiting for the challenger are bounded: one
offered past the bound is logged with the champion's answers only and its tweets are counted as skipped,
so the champion never waits. Each scored call is written to the prediction log once, with both models'
P(positive) for each prediction id.

The server also compares the two live, since it started: the agreement of their labels on every scored
tweet, and each model's accuracy on the tweets users labelled through /feedback (found by prediction id,
or by the tweet's text, among the recent ones it remembers). ``python -m train compare`` does the same on
the whole log and the feedback store, with intervals and a paired test (tweet_sentiment/live.py).
"""

import itertools
import logging
import multiprocessing
import os
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import bentoml

from tweet_sentiment.schemas import ShadowStatus

log = logging.getLogger(__name__)

PredictProba = Callable[[list[str]], Sequence[float]]
# (prediction ids, tweets, champion's P(positive), challenger's P(positive) or None when not scored)
WriteRecord = Callable[[list[str], list[str], Sequence[float], Sequence[float] | None], None]

shadow_tweets = bentoml.metrics.Counter(
    name="tweet_shadow_tweets_total",
    documentation="Tweets the champion answered, by what the challenger did: agreed, disagreed (on the label), "
    "skipped (its queue was full) or failed",
    labelnames=["outcome"],
)
live_feedback = bentoml.metrics.Counter(
    name="tweet_live_feedback_total",
    documentation="Labelled feedback on shadow-scored tweets, by model role and whether that model was right",
    labelnames=["role", "verdict"],
)


class PredictionIds:
    """Prediction ids unique across workers, replicas and restarts: a random prefix per process, then a count."""

    def __init__(self) -> None:
        self.prefix, self.count = secrets.token_hex(6), itertools.count(1)

    def take(self, n: int) -> list[str]:
        return [f"{self.prefix}-{next(self.count)}" for _ in range(n)]


def positive(prob: float) -> bool:
    return prob >= 0.5


@dataclass
class LiveTally:
    """What this worker has seen since it started."""

    agreed: int = 0
    disagreed: int = 0
    skipped: int = 0
    failed: int = 0
    labelled: int = 0
    champion_right: int = 0
    challenger_right: int = 0


MLFLOW_FOLDER = "mlflow_model"  # where bentoml.mlflow.import_model keeps the MLflow model in a BentoML model


def pyfunc_path(bento_tag: str) -> str:
    """The folder of the MLflow model inside a model of the BentoML store (of a built Bento too)."""
    return bentoml.models.get(bento_tag).path_of(MLFLOW_FOLDER)


def load_model(path: str) -> PredictProba:
    """The P(positive) function of a logged model: its pyfunc's own Python model (the request types have
    already validated the tweets; MLflow's input-schema check, a DataFrame round trip a call, is not paid)."""
    import mlflow

    return mlflow.pyfunc.load_model(path).unwrap_python_model().predict


def challenger_process(load: Callable[[], PredictProba], calls, answers) -> None:
    """The challenger's process: load and warm the model, then answer ``(call id, tweets)`` with
    ``(call id, P(positive) list, or the error's text)`` until it gets None."""
    try:  # Linux: run only on a core nothing else wants, and give it up at once when something does
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # elsewhere: the lowest priority
        os.nice(19)
    try:
        predict = load()
        predict(["warming up", "the challenger"])
    except Exception as error:
        answers.put(("failed", f"{type(error).__name__}: {error}"))
        return
    answers.put(("ready", None))
    while (call := calls.get()) is not None:
        call_id, tweets = call
        try:
            answers.put((call_id, [float(p) for p in predict(tweets)]))
        except Exception as error:
            answers.put((call_id, f"{type(error).__name__}: {error}"))
    answers.put(None)


class ChallengerFailed(RuntimeError):
    """The challenger could not be loaded; the message says why."""


class Shadow:
    """The challenger of a server: a process scoring the champion's calls, at most ``capacity`` waiting."""

    def __init__(
        self,
        load: Callable[[], PredictProba],
        label: str,
        write_record: WriteRecord,
        capacity: int,
        remember: int = 20_000,
    ) -> None:
        self.label, self.write_record, self.capacity, self.remember = label, write_record, capacity, remember
        # spawn: a fresh interpreter, not a fork of a server with threads running
        context = multiprocessing.get_context("spawn")
        self.calls, self.answers = context.Queue(), context.Queue()
        self.process = context.Process(target=challenger_process, args=(load, self.calls, self.answers), daemon=True)
        self.call_ids = itertools.count()
        self.waiting: dict[int, tuple[list[str], list[str], Sequence[float]]] = {}  # offered, not yet answered
        # Recent scored predictions, oldest first: id -> (tweet, champion P, challenger P); and a tweet's latest id.
        self.answers_by_id: OrderedDict[str, tuple[str, float, float]] = OrderedDict()
        self.latest_id: dict[str, str] = {}
        # Labels that came for an id before the challenger scored it (id -> true label), judged once it has.
        self.early_labels: OrderedDict[str, str] = OrderedDict()
        self.lock = threading.Lock()
        self.tally = LiveTally()
        self.gone = False  # the challenger's process died: every call is answered and logged without it
        self.collector = threading.Thread(target=self._collect, name="shadow-collector", daemon=True)

    def start(self, timeout: float = 300) -> None:
        """Start the challenger's process and return once it is loaded and warm; ChallengerFailed if it is not."""
        self.process.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, detail = self.answers.get(timeout=1)
                break
            except queue.Empty:
                if not self.process.is_alive():
                    detail = f"its process exited with code {self.process.exitcode}"
                    raise ChallengerFailed(f"the challenger {self.label} failed to load: {detail}") from None
                if time.monotonic() > deadline:
                    raise ChallengerFailed(f"the challenger {self.label} did not load within {timeout:g} s") from None
        if status != "ready":
            raise ChallengerFailed(f"the challenger {self.label} failed to load: {detail}")
        self.collector.start()

    def offer(self, ids: list[str], tweets: list[str], probs: Sequence[float]) -> bool:
        """Send a champion call to the challenger; False (and counted) when ``capacity`` calls are waiting, or
        the challenger is gone: the caller logs the call itself."""
        with self.lock:
            if self.gone or len(self.waiting) >= self.capacity:
                outcome = "failed" if self.gone else "skipped"
                setattr(self.tally, outcome, getattr(self.tally, outcome) + len(ids))
                shadow_tweets.labels(outcome=outcome).inc(len(ids))
                return False
            call_id = next(self.call_ids)
            self.waiting[call_id] = (ids, tweets, probs)
        self.calls.put((call_id, tweets))
        return True

    def stop(self, timeout: float = 30) -> None:
        """Score and log what is waiting, then end the process (a server's shutdown: nothing offered is lost)."""
        if self.process.is_alive():
            self.calls.put(None)
            self.collector.join(timeout)
            self.process.join(timeout)

    def _collect(self) -> None:
        """Log each call the challenger answers; if its process dies, log what it held without it."""
        while True:
            try:
                answer = self.answers.get(timeout=1)
            except queue.Empty:
                if self.process.is_alive():
                    continue
                answer = None
                log.error("the challenger %s exited (code %s): answered without it", self.label, self.process.exitcode)
                with self.lock:
                    self.gone = True
                    held, self.waiting = list(self.waiting.values()), {}
                for call in held:
                    self._log_alone(*call)
            if answer is None:
                return
            call_id, theirs = answer
            with self.lock:
                ids, tweets, probs = self.waiting.pop(call_id)
            if isinstance(theirs, str):
                log.error("the challenger %s failed on %d tweets: %s", self.label, len(ids), theirs)
                self._log_alone(ids, tweets, probs)
            else:
                self.write_record(ids, tweets, probs, theirs)
                self._remember(ids, tweets, probs, theirs)

    def _log_alone(self, ids: list[str], tweets: list[str], probs: Sequence[float]) -> None:
        """A call the challenger did not score: logged with the champion's answers, its tweets counted failed."""
        self.tally.failed += len(ids)
        shadow_tweets.labels(outcome="failed").inc(len(ids))
        self.write_record(ids, tweets, probs, None)

    def _remember(self, ids: list[str], tweets: list[str], probs: Sequence[float], theirs: list[float]) -> None:
        agreed = sum(positive(p) == positive(q) for p, q in zip(probs, theirs, strict=True))
        shadow_tweets.labels(outcome="agreed").inc(agreed)
        shadow_tweets.labels(outcome="disagreed").inc(len(ids) - agreed)
        with self.lock:
            self.tally.agreed += agreed
            self.tally.disagreed += len(ids) - agreed
            for prediction_id, tweet, p, q in zip(ids, tweets, probs, theirs, strict=True):
                self.answers_by_id[prediction_id] = (tweet, float(p), q)
                self.latest_id[tweet] = prediction_id
            while len(self.answers_by_id) > self.remember:
                old_id, (tweet, _, _) = self.answers_by_id.popitem(last=False)
                if self.latest_id.get(tweet) == old_id:
                    del self.latest_id[tweet]
            early = [(i, self.early_labels.pop(i)) for i in ids if i in self.early_labels]
        for prediction_id, label in early:
            self.judge(prediction_id, "", label)

    def status(self) -> ShadowStatus:
        tally = self.tally
        scored = tally.agreed + tally.disagreed
        return ShadowStatus(
            challenger=self.label,
            queued=len(self.waiting),
            scored=scored,
            skipped=tally.skipped,
            failed=tally.failed,
            agreement=tally.agreed / scored if scored else None,
            labelled=tally.labelled,
            champion_accuracy=tally.champion_right / tally.labelled if tally.labelled else None,
            challenger_accuracy=tally.challenger_right / tally.labelled if tally.labelled else None,
        )

    def judge(self, prediction_id: str | None, tweet: str, true_label: str) -> bool:
        """Count a labelled feedback for both models, once per prediction; False if the prediction is not one
        this worker scored recently (another worker's, an old one, one the challenger skipped, or one it has
        not scored yet: that one is judged when it has)."""
        with self.lock:
            prediction_id = prediction_id or self.latest_id.get(tweet)
            answers = self.answers_by_id.pop(prediction_id, None) if prediction_id else None
            if answers is None:
                if prediction_id:
                    self.early_labels[prediction_id] = true_label
                    if len(self.early_labels) > self.remember:
                        self.early_labels.popitem(last=False)
                return False
            if self.latest_id.get(answers[0]) == prediction_id:
                del self.latest_id[answers[0]]
            truth = true_label == "positive"
            champion_right, challenger_right = (positive(p) == truth for p in answers[1:])
            self.tally.labelled += 1
            self.tally.champion_right += champion_right
            self.tally.challenger_right += challenger_right
        for role, right in (("champion", champion_right), ("challenger", challenger_right)):
            live_feedback.labels(role=role, verdict="right" if right else "wrong").inc()
        return True
