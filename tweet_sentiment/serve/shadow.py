"""Shadow scoring: a challenger scores the tweets the champion answered, off the request path.

The champion answers every request alone. Each of its model calls is then offered to the challenger, which
runs in a process of its own at the lowest CPU priority (Linux's SCHED_IDLE): the two never share Python's
interpreter lock (in a thread of the server, the challenger slowed the champion's requests as much with a
cheap model as with an expensive one: docs/serving.md). Calls waiting for the challenger are bounded: one
offered past the bound is logged with the champion's answers only and its tweets are counted as skipped,
so the champion never waits. Each scored prediction is written to the prediction log once, with both
models' P(positive) for its id.

The server also compares the two live, since it started: the agreement of their labels on every scored
tweet, and each model's accuracy on the tweets users labelled through /feedback (found by prediction id,
or by the tweet's text, among the recent ones it remembers). ``python -m train compare`` does the same on
the whole log and the feedback store, with intervals and a paired test (tweet_sentiment/live.py).
"""

import atexit
import contextlib
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from operator import attrgetter

import bentoml

from tweet_model import DECISION_CUT
from tweet_sentiment.core.french import TRANSLATOR
from tweet_sentiment.serve.loading import PredictProba
from tweet_sentiment.serve.schemas import FollowingStatus, ShadowStatus

log = logging.getLogger(__name__)

# (prediction ids, tweets, champion's P(positive), challenger's P(positive) or None when not scored, the
# champion's version that answered)
WriteRecord = Callable[[list[str], list[str], Sequence[float], Sequence[float] | None, str], None]

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


def positive(prob: float) -> bool:
    return prob >= DECISION_CUT


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


ANSWER_TIMEOUT_S = 300  # a challenger silent this long, loading or scoring, is taken for gone
REPLACED_EXIT_S = 2.0  # a replaced challenger's time to exit, its work done, before it is killed


def challenger_process(load: Callable[[], PredictProba], connection: Connection) -> None:
    """The challenger's process: load and warm the model, then answer each list of tweets received with its
    P(positive) list, or the error's text, until it receives None or the server is gone."""
    # BentoML's process manager sends its stop signal to a worker's children too, and a Ctrl-C reaches the whole
    # group: the server ends this process itself, once what is waiting is scored (Shadow.stop).
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, signal.SIG_IGN)
    try:  # Linux: run only on a core nothing else wants, and give it up at once when something does
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # elsewhere: the lowest priority
        os.nice(19)
    try:
        predict = load()
        predict(["warming up", "the challenger"])
    except Exception as error:
        connection.send(f"{type(error).__name__}: {error}")
        return
    connection.send("ready")
    with contextlib.suppress(EOFError, BrokenPipeError):  # the server died without a word
        while (tweets := connection.recv()) is not None:
            try:
                answer: list[float] | str = [float(p) for p in predict(tweets)]
            except Exception as error:
                answer = f"{type(error).__name__}: {error}"
            connection.send(answer)
    TRANSLATOR.close()  # French tweets' translator, where it answered some


class ChallengerFailed(RuntimeError):
    """The challenger could not be loaded; the message says why."""


class ChallengerProcess:
    """A challenger model in a process of its own (``challenger_process``), named by ``label``."""

    def __init__(self, load: Callable[[], PredictProba], label: str) -> None:
        self.label = label
        # spawn: a fresh interpreter, not a fork of a server with threads running
        context = multiprocessing.get_context("spawn")
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=challenger_process, args=(load, theirs), daemon=True)

    def start(self, timeout: float = ANSWER_TIMEOUT_S) -> "ChallengerProcess":
        """Start the process and return once the model is loaded and warm; ChallengerFailed if it is not."""
        self.process.start()
        try:
            status = self.receive(timeout)
        except ChallengerFailed as failed:
            status = str(failed)
        if status != "ready":
            self.process.kill()
            raise ChallengerFailed(f"the challenger {self.label} failed to load: {status}")
        return self

    def score(self, tweets: list[str]) -> list[float] | str:
        """Its P(positive) of each tweet, or the text of the error it raised; ChallengerFailed or OSError when
        its process is gone."""
        self.connection.send(tweets)
        return self.receive(ANSWER_TIMEOUT_S)

    def receive(self, timeout: float) -> object:
        """The process's next message; ChallengerFailed if it exits, or is silent for ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.connection.poll(1):
            if not self.process.is_alive():
                raise ChallengerFailed(f"its process exited with code {self.process.exitcode}")
            if time.monotonic() > deadline:
                raise ChallengerFailed(f"it did not answer within {timeout:g} s")
        try:
            return self.connection.recv()
        except EOFError:
            raise ChallengerFailed("its process closed the connection") from None

    def stop(self, timeout: float = 30) -> None:
        """End the process once it has answered what it was sent (the caller sends nothing meanwhile); one still
        running ``timeout`` seconds later (at its idle priority, a busy machine may starve it) is killed."""
        if self.process.is_alive():
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it died meanwhile: nothing to end
                self.connection.send(None)
            self.process.join(timeout)
        if self.process.is_alive():
            self.kill(f"it did not end within {timeout:g} s of being asked")

    def kill(self, why: str) -> None:
        """SIGKILL, logged: the process ignores SIGTERM (the server ends it itself, once its queue is scored)."""
        log.warning("the challenger %s (pid %s) is killed: %s", self.label, self.process.pid, why)
        self.process.kill()
        self.process.join()


@dataclass
class Call:
    """A champion's model call, as offered to the challenger."""

    ids: list[str]
    tweets: list[str]
    probs: Sequence[float]
    model: str  # the champion's version that answered: a swap may come between two calls

    @classmethod
    def merge(cls, calls: list["Call"]) -> "Call":
        """Calls of one version as one."""
        return cls(
            [i for call in calls for i in call.ids],
            [tweet for call in calls for tweet in call.tweets],
            [float(p) for call in calls for p in call.probs],
            calls[0].model,
        )


class Shadow:
    """The challenger of a server: a process scoring the champion's calls, at most ``capacity`` waiting.

    Offering a call only appends it to a list. One thread of the server sends what has gathered to the
    challenger every ``tick`` seconds, as one message, and logs it with the answers as one record: per request,
    the champion pays an append, not a message, a record or a thread woken to take the interpreter lock.
    Another version of the challenger, started in a process of its own, replaces it between two messages
    (``replace``: its alias moved), and the live comparison starts again.
    """

    def __init__(
        self,
        load: Callable[[], PredictProba],
        label: str,
        write_record: WriteRecord,
        capacity: int,
        remember: int = 20_000,
        tick: float = 0.1,
    ) -> None:
        self.write_record, self.capacity, self.remember, self.tick = write_record, capacity, remember, tick
        self.challenger = ChallengerProcess(load, label)
        self.replacement: ChallengerProcess | None = None  # started, waiting for the sender to take it in
        self.gathered: list[Call] = []  # offered, not yet sent
        self.waiting = 0  # calls offered and not yet logged: gathered, or being scored
        # Recent scored predictions, oldest first: id -> (tweet, champion P, challenger P); and a tweet's latest id.
        self.answers_by_id: OrderedDict[str, tuple[str, float, float]] = OrderedDict()
        self.latest_id: dict[str, str] = {}
        # Labels that came for an id before the challenger scored it (id -> true label), judged once it has.
        self.early_labels: OrderedDict[str, str] = OrderedDict()
        self.lock = threading.Lock()
        self.tally = LiveTally()
        self.gone = False  # the challenger's process died: every call is answered and logged without it
        self.stopping = threading.Event()
        self.sender = threading.Thread(target=self._score_gathered, name="shadow-sender", daemon=True)

    @property
    def label(self) -> str:
        """The challenger scoring now, e.g. tweet-lstm/4@challenger."""
        return self.challenger.label

    def start(self, timeout: float = ANSWER_TIMEOUT_S) -> None:
        """Start the challenger's process and return once it is loaded and warm; ChallengerFailed if it is not."""
        self.challenger.start(timeout)
        self.sender.start()
        atexit.register(self.stop)  # before multiprocessing's own exit handler joins the process

    def replace(self, challenger: ChallengerProcess) -> None:
        """Score with ``challenger`` (started) from the next message on; the one it replaces ends once it has
        answered what it was sent, and one still waiting to be taken in (the alias moved twice) ends now."""
        with self.lock:
            superseded, self.replacement = self.replacement, challenger
        if superseded:
            superseded.stop()

    def offer(self, ids: list[str], tweets: list[str], probs: Sequence[float], model: str) -> bool:
        """Give a champion call to the challenger; False (and counted) when ``capacity`` calls are waiting, or
        the challenger is gone: the caller logs the call itself."""
        with self.lock:
            if self.gone or self.waiting >= self.capacity:
                self._count("failed" if self.gone else "skipped", len(ids))
                return False
            self.waiting += 1
            self.gathered.append(Call(ids, tweets, probs, model))
        return True

    def stop(self, timeout: float = 30) -> None:
        """Score and log what is waiting, then end the process (a server's shutdown: nothing offered is lost).
        A challenger that has not answered within ``timeout`` is killed: the sender logs what is left without it."""
        self.stopping.set()
        if self.sender.is_alive():
            self.sender.join(timeout)
        if self.sender.is_alive():  # waiting on the challenger's answer
            self.challenger.kill(f"it did not answer within {timeout:g} s of the server stopping")
            self.sender.join(timeout)
        for challenger in (self.challenger, self.replacement):  # the sender is done: one writer on the connection
            if challenger:
                challenger.stop(timeout)

    def _score_gathered(self) -> None:
        """Every tick, send the gathered calls to the challenger and log them with its answers, as one record;
        if its process dies, log what it held without it."""
        while True:
            stopping = self.stopping.wait(self.tick)
            with self.lock:
                calls, self.gathered = self.gathered, []
                replacement, self.replacement = self.replacement, None
            if replacement:
                self._take_in(replacement)
            if calls:
                for _, of_one_version in itertools.groupby(calls, key=attrgetter("model")):
                    self._score(Call.merge(list(of_one_version)))
                with self.lock:
                    self.waiting -= len(calls)
            elif stopping or self.gone:
                return

    def _take_in(self, replacement: ChallengerProcess) -> None:
        """The sender's side of ``replace``: end the old process, and compare anew. The old one has answered all it
        was sent (the sender waits for each answer), so it is given little time to exit: at its idle priority,
        on a busy machine, exiting alone could hold the sender for long."""
        old, self.challenger = self.challenger, replacement
        old.stop(timeout=REPLACED_EXIT_S)
        with self.lock:
            self.gone, self.tally = False, LiveTally()
            self.answers_by_id.clear()
            self.latest_id.clear()
            self.early_labels.clear()
        log.warning("the challenger is now %s (was %s)", replacement.label, old.label)

    def _score(self, call: Call) -> None:
        if self.gone:
            self._log_alone(call)
            return
        try:
            theirs = self.challenger.score(call.tweets)
        except (ChallengerFailed, OSError) as error:
            log.error("the challenger %s is gone (%s): answering without it", self.label, error)
            self.gone = True
            self._log_alone(call)
            return
        if isinstance(theirs, str):
            log.error("the challenger %s failed on %d tweets: %s", self.label, len(call.ids), theirs)
            self._log_alone(call)
        else:
            self.write_record(call.ids, call.tweets, call.probs, theirs, call.model)
            self._remember(call, theirs)

    def _count(self, outcome: str, tweets: int) -> None:
        """Add tweets to an outcome of this worker's tally and of the metric; the caller holds the lock."""
        setattr(self.tally, outcome, getattr(self.tally, outcome) + tweets)
        shadow_tweets.labels(outcome=outcome).inc(tweets)

    def _log_alone(self, call: Call) -> None:
        """A call the challenger did not score: logged with the champion's answers, its tweets counted failed."""
        with self.lock:
            self._count("failed", len(call.ids))
        self.write_record(call.ids, call.tweets, call.probs, None, call.model)

    def _remember(self, call: Call, theirs: list[float]) -> None:
        ids = call.ids
        agreed = sum(positive(p) == positive(q) for p, q in zip(call.probs, theirs, strict=True))
        with self.lock:
            self._count("agreed", agreed)
            self._count("disagreed", len(ids) - agreed)
            for prediction_id, tweet, p, q in zip(ids, call.tweets, call.probs, theirs, strict=True):
                self.answers_by_id[prediction_id] = (tweet, p, q)
                self.latest_id[tweet] = prediction_id
            while len(self.answers_by_id) > self.remember:
                old_id, (tweet, _, _) = self.answers_by_id.popitem(last=False)
                if self.latest_id.get(tweet) == old_id:
                    del self.latest_id[tweet]
            early = [(i, self.early_labels.pop(i)) for i in ids if i in self.early_labels]
        for prediction_id, label in early:
            self.judge(prediction_id, "", label)

    def status(self, following: FollowingStatus | None = None) -> ShadowStatus:
        """The live comparison, and how the challenger's alias is followed (``following``)."""
        tally = self.tally
        scored = tally.agreed + tally.disagreed
        return ShadowStatus(
            challenger=self.label,
            queued=self.waiting,
            scored=scored,
            skipped=tally.skipped,
            failed=tally.failed,
            agreement=tally.agreed / scored if scored else None,
            labelled=tally.labelled,
            champion_accuracy=tally.champion_right / tally.labelled if tally.labelled else None,
            challenger_accuracy=tally.challenger_right / tally.labelled if tally.labelled else None,
            following=following,
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
