"""What a worker answers with, and how: the models a request may name, each with its batcher; the challenger
scoring the default model's calls in shadow; the prediction log; the brands a tweet names; the answers' metrics.
"""

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

import bentoml
from bentoml.exceptions import ServiceUnavailable
from starlette.responses import Response

from tweet_model import DECISION_CUT
from tweet_model.pyfunc import EXAMPLE_TWEETS
from tweet_sentiment.core.brands import Brands, count_by_brand
from tweet_sentiment.core.config import LABELS, settings
from tweet_sentiment.core.french import FRENCH, ROUTE_MARK, translate_to_english
from tweet_sentiment.core.language import detect_languages, language_warning
from tweet_sentiment.core.models import ServedModel
from tweet_sentiment.core.prediction_log import PredictionLog
from tweet_sentiment.serve import internals
from tweet_sentiment.serve.following import AliasFollower, FollowedModel, LoadedModel, follow_challenger
from tweet_sentiment.serve.guards import RETRY_SOON, error_response
from tweet_sentiment.serve.loading import PredictionIds, answer_french, load_challenger
from tweet_sentiment.serve.metrics import brand_predictions_total, model_batch_size, predictions_total
from tweet_sentiment.serve.runtime import unbatched
from tweet_sentiment.serve.schemas import answered
from tweet_sentiment.serve.shadow import Shadow

EXPLAINED_PER_CALL = 8  # tweets at most, each with its words' variants: a model call of ~150 texts
# An explanation call holds a core that predictions' calls would use: it is kept this short where the model allows.
EXPLAIN_CALL_S = 1.0
EXPLAIN_FLOOR_MS = 5000
LONGEST_TWEET = " ".join(EXAMPLE_TWEETS * 3)[:280]  # as long as Twitter allows: the costliest to answer
SHEDDING_FLOOR_MS = 1000  # tighter deadlines shed requests under ordinary jitter (REPORT.md, shedding rows)
# Of the request timeout: a request predicted past it is answered 503 at once, not 504 at the timeout; the margin
# is for calls under load, slower than the idle ones the prediction is made of.
SHEDDING_CEILING_SHARE = 2 / 3
# A request arriving as every batch slot is taken waits for one of the three in flight on two cores to finish,
# then for its own: about three full calls. One more leaves room for jitter; past that is overload.
SHED_PAST_FULL_CALLS = 4

log = logging.getLogger(__name__)
# Its lines are start-up facts an operator needs (each model's deadline): shown under the root's WARNING.
log.setLevel(logging.INFO)


def call_costs(call: Callable[[list[str]], object], *sizes: int) -> list[tuple[int, float]]:
    """(n, seconds) of a warm ``call`` of n longest tweets, for each size: as n one-tweet requests, the units of
    the dispatcher's latency model."""
    costs = []
    for n in sizes:
        tweets = [LONGEST_TWEET] * n
        call(tweets)  # a runtime's first call of a shape plans it
        start = time.perf_counter()
        call(tweets)
        costs.append((n, time.perf_counter() - start))
    return costs


def shedding_deadline_ms(full_call_s: float, floor_ms: int = SHEDDING_FLOOR_MS) -> int:
    """The dispatcher's deadline, given what a full call of the served model takes: it answers 503 for a request
    it predicts will exceed it (internals.AdmittingDispatcher). One constant for every model shed a transformer's
    requests under any concurrent load: MPNet's full call alone outlasts 1 s."""
    ceiling_ms = SHEDDING_CEILING_SHARE * settings().request_timeout_seconds * 1000
    return int(min(ceiling_ms, max(floor_ms, math.ceil(SHED_PAST_FULL_CALLS * full_call_s * 1000))))


def explained_per_call(one_tweet_s: float) -> int:
    """How many tweets an explanation call takes, given what explaining one costs: as many as fit in
    ``EXPLAIN_CALL_S``, at least one, at most ``EXPLAINED_PER_CALL``."""
    return max(1, min(EXPLAINED_PER_CALL, int(EXPLAIN_CALL_S / one_tweet_s)))


class Answering:
    """One worker's models and what goes with their answers. ``models``: what a request may name (its spec ->
    the model it resolved to), the default first; ``challenger``: scored in shadow on the default's calls.

    Adaptive batching (``max_batch_size`` tweets a call) serves /predict and /predict_batch alike: a model call
    of many tweets costs far less a tweet than calls of one (benchmarks/results/REPORT.md, model alone). A batcher
    a model: a request never waits on another model's batch, and each has its own shedding deadline
    (``shedding_deadline_ms``).
    """

    def __init__(
        self,
        models: dict[str, ServedModel],
        brands: Brands,
        challenger: tuple[str, ServedModel] | None = None,
        batching: bool = True,
        max_batch_size: int = 64,
    ) -> None:
        # Loaded and warmed before /readyz says yes: the runtime's first calls allocate and plan for their shapes,
        # paid now so that no early request waits behind them, or gets shed.
        self.models = {spec: FollowedModel(spec, model) for spec, model in models.items()}
        self.default = next(iter(self.models))
        self.served = self.models[self.default]
        self.brands = brands
        for brand in brands.names:  # every series exists from the start: Prometheus' increase() sees the first
            for label in LABELS:
                brand_predictions_total.labels(brand=brand, label=label)
        self.prediction_ids = PredictionIds()
        self.prediction_log = PredictionLog(worker=bentoml.server_context.worker_index or 0)
        self.shadow: Shadow | None = None
        self.challenger_follower: AliasFollower | None = None
        if challenger:  # in a process of its own (serve/shadow.py), loaded before /readyz says yes
            spec, model = challenger
            load = partial(load_challenger, model.bento_tag)
            self.shadow = Shadow(load, model.label, self.log, settings().shadow_queue_calls)
            self.shadow.start()
            # By alias, the challenger follows it too: a new challenger reaches the shadow without a restart.
            self.challenger_follower = follow_challenger(spec, model, self.shadow)
        self.batchers = {
            spec: self.batched(model, max_batch_size) if batching else unbatched(partial(self.predict, model))
            for spec, model in self.models.items()
        }
        self.explainers = {
            spec: self.explaining(model) if batching else unbatched(partial(self.explain, model))
            for spec, model in self.models.items()
        }

    def batched(self, model: FollowedModel, max_batch_size: int) -> Callable:
        """``model``'s answers through a dispatcher whose deadline and first latency estimates are its measured
        costs."""
        costs = call_costs(model.current.predict_proba, 1, max_batch_size)
        full_call_s = costs[-1][1]
        deadline_ms = shedding_deadline_ms(full_call_s)
        log.info("%s: a call of %d tweets takes %.2f s, requests shed past %.1f s",
                 model.spec, max_batch_size, full_call_s, deadline_ms / 1000)  # fmt: skip
        return internals.adaptive_batching(partial(self.predict, model), max_batch_size, deadline_ms, costs)

    def explaining(self, model: FollowedModel) -> Callable:
        """``model``'s explanations through a dispatcher of their own, one call at a time (a tweet's costs a model
        call of its words' variants: it must never hold up a prediction's batch nor take every core from them),
        its tweets a call and deadline set by what explaining one tweet costs this model."""
        [(_, one_tweet_s)] = call_costs(model.current.explain, 1)
        per_call = explained_per_call(one_tweet_s)
        full_call_s = per_call * one_tweet_s
        deadline_ms = shedding_deadline_ms(full_call_s, floor_ms=EXPLAIN_FLOOR_MS)
        log.info("%s: explaining a tweet takes %.2f s, %d a call, requests shed past %.1f s",
                 model.spec, one_tweet_s, per_call, deadline_ms / 1000)  # fmt: skip
        return internals.adaptive_batching(
            partial(self.explain, model),
            per_call,
            deadline_ms,
            [(1, one_tweet_s), (per_call, full_call_s)],
            max_concurrent_batches=1,
        )

    def start(self) -> None:
        """Follow the aliases served by (with a registry within reach, promotions reach this worker)."""
        for model in self.models.values():
            model.start()
        if self.challenger_follower:
            self.challenger_follower.start()

    def stop(self) -> None:
        """The challenger scores what is queued, the prediction log writes it all."""
        for model in self.models.values():
            model.stop()
        if self.challenger_follower:
            self.challenger_follower.stop()
        if self.shadow:
            self.shadow.stop()
        self.prediction_log.close()

    def answering_now(self) -> dict[str, ServedModel]:
        """Each model a request may name, the version answering now."""
        return {spec: model.current.model for spec, model in self.models.items()}

    @property
    def model_label(self) -> str:
        """tweet-lstm/3@champion: the default's answers, logs and metrics name the version served now."""
        return self.served.current.model.label

    async def answer(
        self, tweets: list[str], model: str | None, one: bool = False, explained: bool = False
    ) -> Response:
        """The answers of the model a request names (default: the served one), batched with other requests to it
        (``one``: the first answer alone; ``explained``: with their explanations); 400 for a model this server was
        not started with, 503 when overloaded."""
        batcher = (self.explainers if explained else self.batchers).get(model or self.default)
        if batcher is None:
            return error_response(400, f"unknown model {model!r}: this server answers with {', '.join(self.models)}")
        try:
            answers = await batcher(tweets)
        except ServiceUnavailable as overloaded:
            return error_response(503, str(overloaded), RETRY_SOON)
        return answered(answers[0] if one else answers)

    def predict(self, model: FollowedModel, tweets: list[str], current: LoadedModel | None = None) -> list[dict]:
        """One model call's answers, each the JSON object of a `Prediction`, its fields in that order: the route
        encodes them in one go (answered), with no model object built a tweet. ``current``: the version to answer
        with (default: the one answering now)."""
        model_batch_size.labels(model=model.spec).observe(len(tweets))
        current = current or model.current  # the model of this call, whatever swap comes meanwhile
        answered_by = current.model.label
        ids = self.prediction_ids.take(len(tweets))
        probs = current.predict_proba(tweets)
        languages = detect_languages(tweets)
        by_route = [False] * len(tweets)  # answered in French by translation: `model` says so, no warning
        if current.answers_french and FRENCH in languages:
            probs, by_route = answer_french(current.predict_proba, tweets, languages, probs)
        labels = [LABELS[int(p >= DECISION_CUT)] for p in probs]
        brands = self.brands.match_all(tweets) if self.brands else [[]] * len(tweets)
        answers = [
            {
                "id": prediction_id,
                "label": label,
                "prob_positive": p,
                "model": answered_by + ROUTE_MARK if routed else answered_by,
                "language": language,
                "warning": None if routed else language_warning(language),
                "brands": named,
            }
            for prediction_id, label, p, language, routed, named in zip(
                ids, labels, probs, languages, by_route, brands, strict=True
            )
        ]
        # The challenger shadows the default model; a call is logged once the challenger has scored it.
        if model is not self.served or self.shadow is None or not self.shadow.offer(ids, tweets, probs, answered_by):
            self.log(ids, tweets, probs, None, answered_by)
        for label, count in Counter(labels).items():
            predictions_total.labels(label=label, model=answered_by).inc(count)
        for (brand, label), count in count_by_brand(brands, labels).items():
            brand_predictions_total.labels(brand=brand, label=label).inc(count)
        return answers

    def explain(self, model: FollowedModel, tweets: list[str]) -> list[dict]:
        """Each tweet's answer, as ``predict`` gives it, with each word's effect on its P(positive)
        (tweet_model/explain.py); a French tweet answered through English is explained on that English, its
        effects halved as the route halves the model's P (the lexicon's half is not explained)."""
        current = model.current  # one version answers and explains, whatever swap comes meanwhile
        answers = self.predict(model, tweets, current)
        routed = [answer["model"].endswith(ROUTE_MARK) for answer in answers]
        texts = list(tweets)
        if any(routed):
            english = iter(translate_to_english([tweet for tweet, r in zip(tweets, routed, strict=True) if r]))
            texts = [next(english) if r else tweet for tweet, r in zip(tweets, routed, strict=True)]
        for answer, text, by_route, explanation in zip(answers, texts, routed, current.explain(texts), strict=True):
            contributions = explanation.contributions(scale=0.5 if by_route else 1.0)
            answer |= {
                "method": explanation.method,
                "explained": "english_translation" if by_route else "tweet",
                "explained_text": text,
                "contributions": contributions,
                "ranked": sorted(range(len(contributions)), key=lambda i: -abs(contributions[i]["effect"])),
            }
        return answers

    def log(self, ids: list[str], tweets: list[str], probs, challenger_probs, model: str) -> None:
        """One prediction-log record per model call (drift report, live comparison) of the version ``model``,
        with the challenger's answers when one is served."""
        challenger = self.shadow.label if self.shadow and challenger_probs is not None else None
        self.prediction_log.record(ids, tweets, probs, model, challenger, challenger_probs)
