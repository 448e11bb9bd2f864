"""Shadow scoring: a challenger scores the tweets the champion answered, off the request path.

The champion answers every request alone. Each of its model calls is then queued for the challenger; a
thread of the lowest CPU priority scores them and writes one prediction-log record per call holding, for
each prediction id, both models' P(positive). The thread is busy at most ``cpu_share`` of the time: after
each call it rests in proportion, so under load (when a call takes longer, waiting for cores and for
Python's lock) it scores fewer. The queue is bounded: when it is full, the call is logged with the
champion's answers only and its tweets are counted as skipped, so the champion never waits for it.

The server also compares the two live, since it started: the agreement of their labels on every scored
tweet, and each model's accuracy on the tweets users labelled through /feedback (found by prediction id,
or by the tweet's text, among the recent ones it remembers). ``python -m train compare`` does the same on
the whole log and the feedback store, with intervals and a paired test (tweet_sentiment/live.py).
"""

import itertools
import logging
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


class Shadow:
    """The challenger of a server, scoring the champion's calls from a bounded queue in its own thread."""

    def __init__(
        self,
        predict_proba: PredictProba,
        label: str,
        write_record: WriteRecord,
        capacity: int,
        cpu_share: float = 1.0,
        remember: int = 20_000,
    ) -> None:
        self.predict_proba, self.label, self.write_record = predict_proba, label, write_record
        self.rest_per_busy_second = 1 / cpu_share - 1
        self.calls: queue.Queue = queue.Queue(capacity)
        self.remember = remember
        # Recent scored predictions, oldest first: id -> (tweet, champion P, challenger P); and a tweet's latest id.
        self.answers: OrderedDict[str, tuple[str, float, float]] = OrderedDict()
        self.latest_id: dict[str, str] = {}
        # Labels that came for an id before the challenger scored it (id -> true label), judged once it has.
        self.early_labels: OrderedDict[str, str] = OrderedDict()
        self.lock = threading.Lock()
        self.tally = LiveTally()
        self.thread = threading.Thread(target=self._run, name="shadow-scoring", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def offer(self, ids: list[str], tweets: list[str], probs: Sequence[float]) -> bool:
        """Queue a champion call for the challenger; False (and counted) when the queue is full."""
        try:
            self.calls.put_nowait((ids, tweets, probs))
            return True
        except queue.Full:
            with self.lock:
                self.tally.skipped += len(ids)
            shadow_tweets.labels(outcome="skipped").inc(len(ids))
            return False

    def stop(self, timeout: float = 30) -> None:
        """Score what is queued, then end the thread (a server's shutdown: nothing queued is lost)."""
        if self.thread.is_alive():
            self.calls.put(None, timeout=timeout)
            self.thread.join(timeout)

    def _run(self) -> None:
        lowest_cpu_priority()
        while (call := self.calls.get()) is not None:
            start = time.perf_counter()
            self._score(*call)
            time.sleep((time.perf_counter() - start) * self.rest_per_busy_second)

    def _score(self, ids: list[str], tweets: list[str], probs: Sequence[float]) -> None:
        try:
            theirs = [float(p) for p in self.predict_proba(tweets)]
        except Exception:
            log.exception("the challenger %s failed on %d tweets; logged without its answers", self.label, len(ids))
            self.tally.failed += len(ids)
            shadow_tweets.labels(outcome="failed").inc(len(ids))
            self.write_record(ids, tweets, probs, None)
            return
        self.write_record(ids, tweets, probs, theirs)
        self._remember(ids, tweets, probs, theirs)

    def _remember(self, ids: list[str], tweets: list[str], probs: Sequence[float], theirs: list[float]) -> None:
        agreed = sum(positive(p) == positive(q) for p, q in zip(probs, theirs, strict=True))
        shadow_tweets.labels(outcome="agreed").inc(agreed)
        shadow_tweets.labels(outcome="disagreed").inc(len(ids) - agreed)
        with self.lock:
            self.tally.agreed += agreed
            self.tally.disagreed += len(ids) - agreed
            for prediction_id, tweet, p, q in zip(ids, tweets, probs, theirs, strict=True):
                self.answers[prediction_id] = (tweet, float(p), q)
                self.latest_id[tweet] = prediction_id
            while len(self.answers) > self.remember:
                old_id, (tweet, _, _) = self.answers.popitem(last=False)
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
            queued=self.calls.qsize(),
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
            answers = self.answers.pop(prediction_id, None) if prediction_id else None
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


def lowest_cpu_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux: a thread's own nice value), so that the challenger
    computes on cores the champion leaves idle. Elsewhere, the thread keeps the process's priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError) as error:
        log.info("the shadow thread keeps the server's CPU priority: %s", error)
