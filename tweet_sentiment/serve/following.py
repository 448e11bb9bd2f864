"""A server that follows its alias: promotion and rollback reach it without a restart.

Served as ``NAME@ALIAS`` with a registry it can reach, each worker looks the alias up every
TWEETS_ALIAS_POLL_SECONDS. When it has moved, the worker loads the new version (imported into the BentoML store
first if it never was), checks that it answers, and only then swaps it in, in one assignment: a model call that
started on the old version finishes on it, the next ones get the new one, and every answer's ``model`` says
which answered. A version that fails to load or to answer is not swapped in: the worker keeps the one it has,
says why once in the log, counts it, shows it in /status, and tries again only once the alias has moved again.
"""

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

import bentoml
from mlflow import MlflowClient

from tweet_model.explain import Explanation, by_occlusion
from tweet_model.pyfunc import EXAMPLE_TWEETS, load_logged
from tweet_sentiment.core.config import settings
from tweet_sentiment.core.dependencies import Dependency
from tweet_sentiment.core.french import FRENCH
from tweet_sentiment.core.models import ModelSpec, ServedModel, bento_model_for, in_built_bento
from tweet_sentiment.serve.loading import (
    PredictProba,
    answer_french,
    french_by_translation,
    load_challenger,
    pyfunc_path,
)
from tweet_sentiment.serve.schemas import FollowingStatus
from tweet_sentiment.serve.shadow import ChallengerProcess, Shadow

log = logging.getLogger(__name__)

model_swaps_total = bentoml.metrics.Counter(
    name="tweet_model_swaps_total",
    documentation="Versions the served alias moved to: swapped in, or kept out because they failed to load or answer",
    labelnames=["outcome"],
)


@dataclass(frozen=True)
class LoadedModel:
    """A served model and its P(positive) function, swapped as one; whether it answers French tweets by
    translation (core/french.py); its explanations (default: by occlusion through ``predict_proba``)."""

    model: ServedModel
    predict_proba: PredictProba
    answers_french: bool = False
    explainer: Callable[[list[str]], list[Explanation]] | None = None

    def explain(self, tweets: list[str]) -> list[Explanation]:
        return (self.explainer or partial(by_occlusion, predict=self.predict_proba))(tweets)


def load_and_warm(model: ServedModel) -> LoadedModel:
    """Load a model from the BentoML store and make its first calls (the runtime plans its shapes on them);
    raises if it cannot answer them."""
    logged = load_logged(pyfunc_path(model.bento_tag))
    predict = logged.predict_proba
    for n in (1, 2):
        probs = list(predict(EXAMPLE_TWEETS[:n]))
        if len(probs) != n or not all(0 <= p <= 1 for p in probs):
            raise ValueError(f"{model.label} answered {probs!r} to {n} tweet(s)")
    french = french_by_translation(model.bento_tag)
    if french:  # the translator's and the lexicon's first call too
        answer_french(predict, ["Merci pour ce vol"], [FRENCH], [0.5])
    logged.explain(EXAMPLE_TWEETS[:1])
    return LoadedModel(model, predict, french, logged.explain)


def served_version(spec: ModelSpec, version: str) -> ServedModel:
    """The registered ``version`` of the model ``spec`` names, imported into the BentoML store if need be."""
    return ServedModel.of(bento_model_for(spec.name, version, MlflowClient(settings().tracking_uri)), spec.alias)


def load_version(spec: ModelSpec, version: str) -> LoadedModel:
    """The registered ``version`` of the model ``spec`` names, loaded and warmed."""
    return load_and_warm(served_version(spec, version))


def alias_poll_seconds(spec: ModelSpec) -> float:
    """How often a server of ``spec`` looks its alias up: 0 (never) for a version or a BentoML tag, and in a
    built Bento, which serves the model it packed with no registry around."""
    if not spec.alias or spec.version or in_built_bento():
        return 0.0
    return settings().alias_poll_seconds


def release_unreachable() -> None:
    """Collect what the swapped-out model leaves (the collector skips what serving froze: runtime.py)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


Ready = TypeVar("Ready")  # a version made ready to serve: a loaded model, a challenger's process


class AliasFollower(Generic[Ready]):
    """Follows the alias ``name`` for one worker: ``lookup`` says which version it names now, ``load`` makes a
    version ready to serve, ``swap`` serves it. A thread calls ``check`` every ``poll_s`` seconds."""

    registry = Dependency("model_registry")

    def __init__(
        self,
        name: str,
        version: str,
        lookup: Callable[[], str],
        load: Callable[[str], Ready],
        swap: Callable[[Ready], None],
        poll_s: float,
    ) -> None:
        self.name, self.version, self.lookup, self.load, self.swap = name, version, lookup, load, swap
        self.poll_s = poll_s
        self.failed: tuple[str, str] | None = None  # (version, why) of the last one kept out
        self.checked_at: float | None = None  # time.time() of the last look at the registry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alias-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Stop looking; a look still running then (a slow registry, a version loading) is left to end with the
        process (a daemon thread cannot be stopped from outside), and said."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning(
                "%s: the alias follower is still busy %g s after stop; it ends with the process", self.name, timeout
            )

    def status(self) -> FollowingStatus:
        version, why = self.failed or (None, None)
        return FollowingStatus(
            poll_seconds=self.poll_s, checked_at=self.checked_at, failed_version=version, failed_reason=why
        )

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check()

    def check(self) -> None:
        """One look at the registry, and the swap if the alias moved to a version not already kept out."""
        try:
            version = self.lookup()
            self.registry.succeeded()
        except Exception as error:  # the registry is down or unreachable: keep serving, try at the next poll
            self.registry.failed(error)
            return
        self.checked_at = time.time()
        if version == self.version:
            self.failed = None  # moved back: a later move to the failed version is tried again
            return
        if self.failed and self.failed[0] == version:
            return
        try:
            loaded = self.load(version)
        except Exception as error:
            self.failed = (version, f"{type(error).__name__}: {error}")
            model_swaps_total.labels(outcome="failed").inc()
            why = self.failed[1]
            log.error("%s moved to version %s, not served (v%s still is): %s", self.name, version, self.version, why)
            return
        previous, self.version, self.failed = self.version, version, None
        self.swap(loaded)
        model_swaps_total.labels(outcome="swapped").inc()
        log.warning("%s moved to version %s: swapped in (was version %s)", self.name, version, previous)


class FollowedModel:
    """A model a server answers with, as requests name it (``spec``): the version answering now, swapped in as
    one when the alias it is served by moves (served as a version, a tag or from a built Bento, it never does)."""

    def __init__(self, spec: str, model: ServedModel) -> None:
        self.spec = spec
        self.current = load_and_warm(model)
        parsed = ModelSpec.parse(spec)
        poll_s = alias_poll_seconds(parsed)
        load = partial(load_version, parsed)
        self.follower = (
            AliasFollower(spec, model.version, parsed.registered_version, load, self._swap, poll_s) if poll_s else None
        )

    def _swap(self, loaded: LoadedModel) -> None:
        self.current = loaded  # one assignment: a model call holds the model it started with
        release_unreachable()

    def start(self) -> None:
        if self.follower:
            self.follower.start()

    def stop(self) -> None:
        if self.follower:
            self.follower.stop()

    def status(self) -> FollowingStatus | None:
        return self.follower.status() if self.follower else None


def follow_challenger(spec: str, challenger: ServedModel, shadow: Shadow) -> AliasFollower | None:
    """A follower of the challenger's alias (None where it is not followed): a new version is started in a
    process of its own and replaces the shadow's challenger once it has loaded and answered."""
    parsed = ModelSpec.parse(spec)
    if not (poll_s := alias_poll_seconds(parsed)):
        return None

    def start(version: str) -> ChallengerProcess:
        model = served_version(parsed, version)
        return ChallengerProcess(partial(load_challenger, model.bento_tag), model.label).start()

    return AliasFollower(spec, challenger.version, parsed.registered_version, start, shadow.replace, poll_s)
