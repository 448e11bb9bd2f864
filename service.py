"""Tweet sentiment as a BentoML service.

Serve the LSTM's champion (default), or any model by MLflow alias or BentoML tag, with adaptive batching::

    bentoml serve                                         # tweet-lstm@champion
    bentoml serve --arg model_tag=tweet-minilm@champion   # any registered model and alias
    bentoml serve --arg model_tag=tweet-logreg:latest     # or a BentoML tag
    bentoml serve --arg batching=false --arg access_log=true
    bentoml serve --arg challenger=tweet-lstm@challenger     # scored in shadow: the champion answers alone
    bentoml serve --arg models=tweet-minilm@champion         # a request may also name this one ("model": ...)

Served by alias, each worker follows it: a promotion or a rollback is swapped in without a restart
(TWEETS_ALIAS_POLL_SECONDS; serve/following.py). So does every model a request may name, each with a batcher
of its own: a request never waits on another model's batch.

Users report wrong predictions to /feedback; more than TWEETS_ALERT_THRESHOLD of them within
TWEETS_ALERT_WINDOW_SECONDS sends one e-mail.
"""

from __future__ import annotations

from collections import Counter
from functools import partial

import bentoml
from bentoml.exceptions import ServiceUnavailable
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.responses import Response

from tweet_model import DECISION_CUT
from tweet_sentiment.core.config import LABELS, settings
from tweet_sentiment.core.feedback import FeedbackStore, is_outage, truth_of
from tweet_sentiment.core.french import FRENCH, ROUTE_MARK, TRANSLATOR
from tweet_sentiment.core.language import detect_languages, language_warning
from tweet_sentiment.core.models import ModelNotFound, ServedModel, resolve_model
from tweet_sentiment.core.prediction_log import PredictionLog
from tweet_sentiment.serve import internals
from tweet_sentiment.serve.alerting import AlertSender, SMTPSettings
from tweet_sentiment.serve.following import AliasFollower, FollowedModel, follow_challenger
from tweet_sentiment.serve.guards import (
    HEALTH_PATHS,
    RETRY_SOON,
    BodyLimits,
    JSONErrors,
    JSONOnly,
    LoadShedding,
    RequireToken,
    error_response,
)
from tweet_sentiment.serve.loading import TRANSLATION, PredictionIds, answer_french, load_challenger
from tweet_sentiment.serve.openapi import as_answered
from tweet_sentiment.serve.pages import pages
from tweet_sentiment.serve.runtime import limit_model_threads, tune_gc_for_serving, unbatched
from tweet_sentiment.serve.schemas import (
    FeedbackReceipt,
    FeedbackReport,
    IdempotencyKey,
    Label,
    ModelChoice,
    ModelName,
    NamedModelStatus,
    PredictBatchRequest,
    Prediction,
    PredictionId,
    Predictions,
    PredictRequest,
    ServedModelInfo,
    Status,
    StatusRequest,
    Tweet,
    Tweets,
    answered,
)
from tweet_sentiment.serve.shadow import Shadow
from tweet_sentiment.serve.telemetry import configure_azure_monitor


class ServiceArgs(BaseModel):
    model_tag: str = "tweet-lstm@champion"  # an MLflow alias (name@alias) or a BentoML tag (name:version)
    models: str = ""  # more models a request may name, comma-separated specs (the served one is its default)
    challenger: str | None = None  # any model spec, scored in shadow on the same tweets (serve/shadow.py)
    batching: bool = True
    max_batch_size: int = 64  # tweets per model call when batching
    max_concurrency: int = 256  # per worker; past it requests get 503 at once instead of queueing
    access_log: bool = False  # a line per request costs CPU (docs/serving.md); /metrics counts them anyway
    workers: int = 1  # each loads its own copy of the model; REPORT.md measures 1 against 2
    # Model runtime threads per worker. 1: each batch in flight computes on a core of its own (measured against
    # one per core, which None keeps: docs/serving.md).
    model_threads: int | None = 1


args = bentoml.use_arguments(ServiceArgs)
config = settings()
# The pool checks connections before use: the store answers as soon as it is back.
STORE_RETRY_AFTER = {"Retry-After": "5"}
internals.prepare_server(config.header_timeout_seconds, config.drain_seconds)
limit_model_threads(args.model_threads)


def resolved(spec: str, role: str) -> ServedModel:
    """The model ``spec`` names; fails here, at start, naming it and listing what exists, if unknown."""
    try:
        return resolve_model(spec)
    except ModelNotFound as error:
        raise ModelNotFound(f"the {role} {spec!r} cannot be served: {error}") from None


DEFAULT = args.model_tag  # the model of a request that names none
# What a request may name (`model`), the default first.
MODELS = {spec: resolved(spec, "model") for spec in dict.fromkeys([DEFAULT, *filter(None, args.models.split(","))])}
SERVED = MODELS[DEFAULT]
CHALLENGER = resolved(args.challenger, "challenger") if args.challenger else None


predictions_total = bentoml.metrics.Counter(
    name="tweet_predictions_total",
    documentation="Predictions served, by predicted label and model tag",
    labelnames=["label", "model"],
)
model_batch_size = bentoml.metrics.Histogram(
    name="tweet_model_batch_size",
    documentation="Tweets per model call, by model as requests name it: adaptive batching merges concurrent "
    "requests (64 at most when on)",
    labelnames=["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
feedback_total = bentoml.metrics.Counter(
    name="tweet_feedback_total",
    documentation="Feedback on predictions, by verdict (right/wrong) and model tag",
    labelnames=["verdict", "model"],
)


PAGES = pages(
    lambda: TweetSentiment.inner.answering_now(),  # the versions answering now (the class BentoML wraps holds them)
    openapi=lambda: as_answered(TweetSentiment.openapi_spec.asdict(), models=list(MODELS)),
)


@bentoml.asgi_app(PAGES, path="/")  # /, /readme, /model-card, /docs, /docs.json
@bentoml.service(
    workers=args.workers,
    traffic={"timeout": 30},
    metrics={"enabled": True},
    logging={"access": {"enabled": args.access_log}},
)
class TweetSentiment:
    bento_model = bentoml.models.BentoModel(SERVED.bento_tag)
    challenger_model = bentoml.models.BentoModel(CHALLENGER.bento_tag) if CHALLENGER else None
    answering: dict[str, FollowedModel]  # what a request may name (a worker has one instance), the default first

    def __init__(self) -> None:
        configure_azure_monitor()  # only when APPLICATIONINSIGHTS_CONNECTION_STRING is set
        # Loaded and warmed before /readyz says yes: the runtime's first calls allocate and plan for their shapes,
        # paid now so that no early request waits behind them, or gets shed.
        type(self).answering = {spec: FollowedModel(spec, model) for spec, model in MODELS.items()}
        self.served = self.answering[DEFAULT]
        self.prediction_ids = PredictionIds()
        self.prediction_log = PredictionLog(worker=bentoml.server_context.worker_index or 0)
        self.shadow = None
        if CHALLENGER:  # in a process of its own (serve/shadow.py), loaded before /readyz says yes
            load = partial(load_challenger, CHALLENGER.bento_tag)
            self.shadow = Shadow(load, CHALLENGER.label, self._log, config.shadow_queue_calls)
            self.shadow.start()
        # By alias, the challenger follows it too: promoting a new challenger reaches the shadow without a restart.
        self.challenger_follower = follow_challenger(args.challenger, CHALLENGER, self.shadow) if self.shadow else None
        self.feedback_store = FeedbackStore()
        self.alerts = AlertSender(self.feedback_store, SMTPSettings.from_env())
        self.alerts.start()
        # Adaptive batching, for /predict and /predict_batch alike: a model call of many tweets costs far less a
        # tweet than calls of one (benchmarks/results/REPORT.md, model alone), so concurrent requests are merged.
        # max_latency_ms is the dispatcher's shedding deadline, not a wait: it answers 503 for a request it
        # predicts will exceed it, from a latency model fitted online; 1 s sheds only real overload, where tighter
        # deadlines shed requests under ordinary jitter (REPORT.md, shedding rows). A batcher a model.
        batched = (
            partial(internals.adaptive_batching, max_batch_size=args.max_batch_size, max_latency_ms=1000)
            if args.batching
            else unbatched
        )
        self.batchers = {spec: batched(partial(self._predict, model)) for spec, model in self.answering.items()}
        tune_gc_for_serving()  # the model's heap out of the collector's way (docs/serving.md)
        for model in self.answering.values():  # by alias, with a registry within reach: promotions reach us
            model.start()
        if self.challenger_follower:
            self.challenger_follower.start()

    @property
    def model_label(self) -> str:
        """tweet-lstm/3@champion: the `model` of the default's answers, logs and metrics, the version served now."""
        return self.served.current.model.label

    @classmethod
    def answering_now(cls) -> dict[str, ServedModel]:
        """Each model a request may name, the version answering now (empty before a worker has started)."""
        return {spec: model.current.model for spec, model in getattr(cls, "answering", {}).items()}

    @bentoml.on_shutdown
    def stop(self) -> None:
        """The challenger scores what is queued, the prediction log writes it all; the alert sender finishes
        what it is sending."""
        for model in self.answering.values():
            model.stop()
        if self.challenger_follower:
            self.challenger_follower.stop()
        if self.shadow:
            self.shadow.stop()
        self.prediction_log.close()
        self.alerts.stop()
        TRANSLATOR.close()

    def _predict(self, model: FollowedModel, tweets: list[str]) -> list[dict]:
        """One model call's answers, each the JSON object of a `Prediction`, its fields in that order: the route
        encodes them in one go (answered), with no model object built a tweet."""
        model_batch_size.labels(model=model.spec).observe(len(tweets))
        current = model.current  # the model of this call, whatever swap comes meanwhile
        answered_by = current.model.label
        ids = self.prediction_ids.take(len(tweets))
        probs = current.predict_proba(tweets)
        languages = detect_languages(tweets)
        by_route = [False] * len(tweets)  # answered in French by translation: `model` says so, no warning
        if current.answers_french and FRENCH in languages:
            probs, by_route = answer_french(current.predict_proba, tweets, languages, probs)
        labels = [LABELS[int(p >= DECISION_CUT)] for p in probs]
        answers = [
            {
                "id": prediction_id,
                "label": label,
                "prob_positive": p,
                "model": answered_by + ROUTE_MARK if routed else answered_by,
                "language": language,
                "warning": None if routed else language_warning(language),
            }
            for prediction_id, label, p, language, routed in zip(ids, labels, probs, languages, by_route, strict=True)
        ]
        # The challenger shadows the default model; a call is logged once the challenger has scored it.
        if model is not self.served or self.shadow is None or not self.shadow.offer(ids, tweets, probs, answered_by):
            self._log(ids, tweets, probs, None, answered_by)
        for label, count in Counter(labels).items():
            predictions_total.labels(label=label, model=answered_by).inc(count)
        return answers

    def _log(self, ids: list[str], tweets: list[str], probs, challenger_probs, model: str) -> None:
        """One prediction-log record per model call (drift report, live comparison) of the version ``model``,
        with the challenger's answers when one is served."""
        challenger = self.shadow.label if self.shadow and challenger_probs is not None else None
        self.prediction_log.record(ids, tweets, probs, model, challenger, challenger_probs)

    async def _answer(self, tweets: list[str], model: str | None, one: bool = False) -> Response:
        """The answers of the model a request names (default: the served one), batched with other requests to it
        (``one``: the first answer alone); 400 for a model this server was not started with, 503 when overloaded."""
        batcher = self.batchers.get(model or DEFAULT)
        if batcher is None:
            return error_response(400, f"unknown model {model!r}: this server answers with {', '.join(MODELS)}")
        try:
            answers = await batcher(tweets)
        except ServiceUnavailable as overloaded:
            return error_response(503, str(overloaded), RETRY_SOON)
        return answered(answers[0] if one else answers)

    @bentoml.api(input_spec=PredictRequest)
    async def predict(self, tweet: Tweet, model: ModelChoice | None = None) -> Prediction:
        """Sentiment of one tweet, by the model named (default: the served one)."""
        return await self._answer([tweet], model, one=True)

    @bentoml.api(input_spec=PredictBatchRequest)
    async def predict_batch(self, tweets: Tweets, model: ModelChoice | None = None) -> Predictions:
        """Sentiment of a list of tweets, in order, by the model named (default: the served one)."""
        return await self._answer(tweets, model)

    @bentoml.api(input_spec=FeedbackReport)
    def feedback(
        self,
        tweet: Tweet,
        predicted_label: Label,
        true_label: Label | None = None,
        wrong: bool | None = None,
        model: ModelName | None = None,
        idempotency_key: IdempotencyKey | None = None,
        prediction_id: PredictionId | None = None,
    ) -> FeedbackReceipt:
        """Report on a prediction: give its true label, or say whether it was `wrong`, not both; name the
        answer's `id` as `prediction_id` where you have it. Stored durably; with an `idempotency_key`, a retry
        stores nothing twice. 503 with Retry-After only when nothing was stored and the store is down."""
        is_wrong = wrong if true_label is None else true_label != predicted_label
        model = model or self.model_label
        store = self.feedback_store
        try:
            feedback_id = store.add(tweet, predicted_label, true_label, is_wrong, model, idempotency_key, prediction_id)
        except DBAPIError as error:
            if not is_outage(error):  # the database refused this report: the same request would fail again
                return error_response(400, f"the feedback store cannot hold this report ({type(error.orig).__name__})")
            store.health.failed(error)  # down: the client retries (safely with a key)
            return error_response(503, "the feedback store is unavailable; retry later", STORE_RETRY_AFTER)
        try:
            state = store.evaluate()
            store.health.succeeded()
        except DBAPIError as error:  # stored all the same: answered with its id, the alert state unknown
            store.health.failed(error)
            state = None
        # Only a model answering now (in English or by translation) is a label value: a client's free text must
        # not create metric series.
        answering = {served.label + route for served in self.answering_now().values() for route in ("", ROUTE_MARK)}
        feedback_total.labels(
            verdict="wrong" if is_wrong else "right", model=model if model in answering else "other"
        ).inc()
        if self.shadow and model.removesuffix(ROUTE_MARK) == self.model_label:  # the challenger scored it too
            self.shadow.judge(prediction_id, tweet, truth_of(predicted_label, true_label, is_wrong))
        if state and state.opened_now:
            self.alerts.wake()  # the e-mail goes out from the sender thread, never in this request
        return FeedbackReceipt(
            id=feedback_id,
            wrong=is_wrong,
            wrong_in_window=None if state is None else state.wrong_in_window,
            alert_open=None if state is None else state.incident_id is not None,
        )

    @bentoml.api(input_spec=StatusRequest)
    def status(self) -> Status:
        """The served model, the alert state (null while the feedback store is down) and which dependencies
        are degraded, for dashboards and the Streamlit page (reads only)."""
        try:
            state = self.feedback_store.state()
            self.feedback_store.health.succeeded()
        except DBAPIError as error:
            self.feedback_store.health.failed(error)
            state = None
        dependencies = (self.feedback_store.health, PredictionLog.health, AliasFollower.registry, TRANSLATION)
        degraded = [dependency.name for dependency in dependencies if dependency.degraded]
        current = self.served.current.model
        challenger_following = self.challenger_follower.status() if self.challenger_follower else None
        return Status(
            model=current.label,
            served=ServedModelInfo(
                name=current.name,
                version=current.version,
                alias=current.alias,
                bento_tag=current.bento_tag,
                family=current.family,
                mlflow_run_id=current.run_id,
            ),
            family=current.family,
            following=self.served.status(),
            models=[
                NamedModelStatus(name=spec, model=model.current.model.label, following=model.status())
                for spec, model in self.answering.items()
            ],
            alert_open=None if state is None else state.incident_id is not None,
            wrong_in_window=None if state is None else state.wrong_in_window,
            alert_threshold=self.feedback_store.rule.threshold,
            alert_window_seconds=self.feedback_store.rule.window_seconds,
            degraded=degraded,
            shadow=self.shadow.status(challenger_following) if self.shadow else None,
        )


# The Bento packs every model a request may name (the served one and the challenger are declared above).
declared = {SERVED.bento_tag, CHALLENGER.bento_tag if CHALLENGER else None}
TweetSentiment.models.extend(
    bentoml.models.BentoModel(tag) for tag in dict.fromkeys(m.bento_tag for m in MODELS.values()) if tag not in declared
)
# Outermost first: every error in one shape; a body must be whole (and small) before the request takes a place
# in the in-flight limit.
TweetSentiment.add_asgi_middleware(JSONErrors)
TweetSentiment.add_asgi_middleware(BodyLimits, max_bytes=config.max_body_bytes, timeout_s=config.body_timeout_seconds)
TweetSentiment.add_asgi_middleware(LoadShedding, max_concurrency=args.max_concurrency)
TweetSentiment.add_asgi_middleware(JSONOnly)
internals.count_only_known_paths(
    [
        *HEALTH_PATHS,
        *(api.route for api in TweetSentiment.apis.values()),
        *(route.path for route in PAGES.routes),
    ]
)
if token := config.feedback_token:  # TWEETS_FEEDBACK_TOKEN: who may write feedback
    TweetSentiment.add_asgi_middleware(RequireToken, token=token.get_secret_value(), paths=frozenset({"/feedback"}))
