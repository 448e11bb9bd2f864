"""Tweet sentiment as a BentoML service.

Serve the LSTM's champion (default), or any model by MLflow alias or BentoML tag, with adaptive batching::

    bentoml serve                                         # tweet-lstm@champion
    bentoml serve --arg model_tag=tweet-minilm@champion   # any registered model and alias
    bentoml serve --arg model_tag=tweet-logreg:latest     # or a BentoML tag
    bentoml serve --arg batching=false --arg access_log=true
    bentoml serve --arg challenger=tweet-lstm@challenger     # scored in shadow: the champion answers alone

Served by alias, each worker follows it: a promotion or a rollback is swapped in without a restart
(TWEETS_ALIAS_POLL_SECONDS; serve/following.py).

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

from tweet_model import DECISION_CUT
from tweet_sentiment.core.config import LABELS, settings
from tweet_sentiment.core.feedback import FeedbackStore, is_outage, truth_of
from tweet_sentiment.core.language import detect_languages, language_warning
from tweet_sentiment.core.models import ModelNotFound, ModelSpec, resolve_model
from tweet_sentiment.core.prediction_log import PredictionLog
from tweet_sentiment.serve import internals
from tweet_sentiment.serve.alerting import AlertSender, SMTPSettings
from tweet_sentiment.serve.following import (
    AliasFollower,
    LoadedModel,
    alias_poll_seconds,
    load_and_warm,
    load_version,
    release_unreachable,
)
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
from tweet_sentiment.serve.loading import PredictionIds, load_model, pyfunc_path
from tweet_sentiment.serve.openapi import as_answered
from tweet_sentiment.serve.pages import pages
from tweet_sentiment.serve.runtime import limit_model_threads, tune_gc_for_serving, unbatched
from tweet_sentiment.serve.schemas import (
    FeedbackReceipt,
    FeedbackReport,
    IdempotencyKey,
    Label,
    ModelName,
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
SERVED_SPEC = ModelSpec.parse(args.model_tag)
SERVED = resolve_model(args.model_tag)  # fails here, naming the tag and listing what exists, if unknown
try:
    CHALLENGER = resolve_model(args.challenger) if args.challenger else None
except ModelNotFound as error:
    raise ModelNotFound(f"the challenger {args.challenger!r} cannot be served: {error}") from None


predictions_total = bentoml.metrics.Counter(
    name="tweet_predictions_total",
    documentation="Predictions served, by predicted label and model tag",
    labelnames=["label", "model"],
)
model_batch_size = bentoml.metrics.Histogram(
    name="tweet_model_batch_size",
    documentation="Tweets per model call: adaptive batching merges concurrent requests (64 at most when on)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
feedback_total = bentoml.metrics.Counter(
    name="tweet_feedback_total",
    documentation="Feedback on predictions, by verdict (right/wrong) and model tag",
    labelnames=["verdict", "model"],
)


PAGES = pages(
    lambda: TweetSentiment.inner.served.model,  # the version answering now (the class BentoML wraps holds it)
    openapi=lambda: as_answered(TweetSentiment.openapi_spec.asdict()),
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
    served: LoadedModel  # the model answering now (a worker has one instance), swapped as one: _swap

    def __init__(self) -> None:
        configure_azure_monitor()  # only when APPLICATIONINSIGHTS_CONNECTION_STRING is set
        # Loaded and warmed before /readyz says yes: the runtime's first calls allocate and plan for their shapes,
        # paid now so that no early request waits behind them, or gets shed.
        type(self).served = load_and_warm(SERVED)
        self.prediction_ids = PredictionIds()
        self.prediction_log = PredictionLog(worker=bentoml.server_context.worker_index or 0)
        self.shadow = None
        if CHALLENGER:  # in a process of its own (serve/shadow.py), loaded before /readyz says yes
            load = partial(load_model, pyfunc_path(CHALLENGER.bento_tag))
            self.shadow = Shadow(load, CHALLENGER.label, self._log, config.shadow_queue_calls)
            self.shadow.start()
        self.feedback_store = FeedbackStore()
        self.alerts = AlertSender(self.feedback_store, SMTPSettings.from_env())
        self.alerts.start()
        # Adaptive batching, for /predict and /predict_batch alike: a model call of many tweets costs far less a
        # tweet than calls of one (benchmarks/results/REPORT.md, model alone), so concurrent requests are merged.
        # max_latency_ms is the dispatcher's shedding deadline, not a wait: it answers 503 for a request it
        # predicts will exceed it, from a latency model fitted online; 1 s sheds only real overload, where tighter
        # deadlines shed requests under ordinary jitter (REPORT.md, shedding rows).
        self.predict_tweets = (
            internals.adaptive_batching(self._predict, max_batch_size=args.max_batch_size, max_latency_ms=1000)
            if args.batching
            else unbatched(self._predict)
        )
        tune_gc_for_serving()  # the model's heap out of the collector's way (docs/serving.md)
        self.follower = None
        if poll_s := alias_poll_seconds(SERVED_SPEC):  # NAME@ALIAS, a registry within reach: promotions reach us
            self.follower = AliasFollower(
                SERVED.version, SERVED_SPEC.registered_version, partial(load_version, SERVED_SPEC), self._swap, poll_s
            )
            self.follower.start()

    @property
    def model_label(self) -> str:
        """tweet-lstm/3@champion: the `model` of every answer, log and metric, the version served now."""
        return self.served.model.label

    def _swap(self, loaded: LoadedModel) -> None:
        type(self).served = loaded  # one assignment: a model call holds the model it started with
        release_unreachable()

    @bentoml.on_shutdown
    def stop(self) -> None:
        """The challenger scores what is queued, the prediction log writes it all; the alert sender finishes
        what it is sending."""
        if self.follower:
            self.follower.stop()
        if self.shadow:
            self.shadow.stop()
        self.prediction_log.close()
        self.alerts.stop()

    def _predict(self, tweets: list[str]) -> list[dict]:
        """One model call's answers, each the JSON object of a `Prediction`, its fields in that order: the route
        encodes them in one go (answered), with no model object built a tweet."""
        model_batch_size.observe(len(tweets))
        served = self.served  # the model of this call, whatever swap comes meanwhile
        ids = self.prediction_ids.take(len(tweets))
        probs = served.predict_proba(tweets)
        languages = detect_languages(tweets)
        labels = [LABELS[int(p >= DECISION_CUT)] for p in probs]
        answers = [
            {
                "id": prediction_id,
                "label": label,
                "prob_positive": p,
                "model": served.model.label,
                "language": language,
                "warning": language_warning(language),
            }
            for prediction_id, label, p, language in zip(ids, labels, probs, languages, strict=True)
        ]
        if self.shadow is None or not self.shadow.offer(ids, tweets, probs):
            self._log(ids, tweets, probs, None)  # else the call is logged once the challenger has scored it
        for label, count in Counter(labels).items():
            predictions_total.labels(label=label, model=served.model.label).inc(count)
        return answers

    def _log(self, ids: list[str], tweets: list[str], probs, challenger_probs) -> None:
        """One prediction-log record per model call (drift report, live comparison), with the challenger's
        answers when one is served."""
        challenger = self.shadow.label if self.shadow else None
        self.prediction_log.record(ids, tweets, probs, self.model_label, challenger, challenger_probs)

    @bentoml.api(input_spec=PredictRequest)
    async def predict(self, tweet: Tweet) -> Prediction:
        """Sentiment of one tweet."""
        try:
            return answered((await self.predict_tweets([tweet]))[0])
        except ServiceUnavailable as overloaded:
            return error_response(503, str(overloaded), RETRY_SOON)

    @bentoml.api(input_spec=PredictBatchRequest)
    async def predict_batch(self, tweets: Tweets) -> Predictions:
        """Sentiment of a list of tweets, in order."""
        try:
            return answered(await self.predict_tweets(tweets))
        except ServiceUnavailable as overloaded:
            return error_response(503, str(overloaded), RETRY_SOON)

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
        # Only the served model is a label value: a client's free text must not create metric series.
        feedback_total.labels(
            verdict="wrong" if is_wrong else "right", model=self.model_label if model == self.model_label else "other"
        ).inc()
        if self.shadow and model == self.model_label:
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
        dependencies = (self.feedback_store.health, PredictionLog.health, AliasFollower.registry)
        degraded = [dependency.name for dependency in dependencies if dependency.degraded]
        current = self.served.model
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
            following=self.follower.status() if self.follower else None,
            alert_open=None if state is None else state.incident_id is not None,
            wrong_in_window=None if state is None else state.wrong_in_window,
            alert_threshold=self.feedback_store.rule.threshold,
            alert_window_seconds=self.feedback_store.rule.window_seconds,
            degraded=degraded,
            shadow=self.shadow.status() if self.shadow else None,
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
