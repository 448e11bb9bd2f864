"""Tweet sentiment as a BentoML service.

Serve the LSTM's champion (default), or any model by MLflow alias or BentoML tag, with adaptive batching::

    bentoml serve                                         # tweet-lstm@champion
    bentoml serve --arg model_tag=tweet-mpnet@champion    # any registered model and alias
    bentoml serve --arg model_tag=tweet-logreg:latest     # or a BentoML tag
    bentoml serve --arg batching=false --arg access_log=true
    bentoml serve --arg challenger=tweet-lstm@challenger     # scored in shadow: the champion answers alone
    bentoml serve --arg models=tweet-mpnet@champion          # a request may also name this one ("model": ...)

Served by alias, each worker follows it: a promotion or a rollback is swapped in without a restart
(TWEETS_ALIAS_POLL_SECONDS; serve/following.py). So does every model a request may name, each with a batcher
of its own (serve/answering.py). Each answer names the configured brands its tweet names (TWEETS_BRANDS_FILE),
counted per brand and label for the bad-buzz alert (prometheus/).

Users report wrong predictions to /feedback; more than TWEETS_ALERT_THRESHOLD of them within
TWEETS_ALERT_WINDOW_SECONDS sends one e-mail.
"""

from __future__ import annotations

import bentoml
from pydantic import BaseModel

from tweet_sentiment.core.brands import Brands
from tweet_sentiment.core.config import settings
from tweet_sentiment.core.feedback import FeedbackStore
from tweet_sentiment.core.french import TRANSLATOR
from tweet_sentiment.core.models import ServedModel
from tweet_sentiment.serve import internals
from tweet_sentiment.serve.alerting import AlertSender, SMTPSettings
from tweet_sentiment.serve.answering import Answering
from tweet_sentiment.serve.feedback import take_feedback
from tweet_sentiment.serve.guards import HEALTH_PATHS, BodyLimits, JSONErrors, JSONOnly, LoadShedding, RequireToken
from tweet_sentiment.serve.loading import resolved
from tweet_sentiment.serve.openapi import as_answered
from tweet_sentiment.serve.pages import pages
from tweet_sentiment.serve.runtime import limit_model_threads, tune_gc_for_serving
from tweet_sentiment.serve.schemas import (
    ExplainedPrediction,
    ExplainRequest,
    FeedbackReceipt,
    FeedbackReport,
    IdempotencyKey,
    Label,
    ModelChoice,
    ModelName,
    PredictBatchRequest,
    Prediction,
    PredictionId,
    Predictions,
    PredictRequest,
    Status,
    StatusRequest,
    Tweet,
    Tweets,
)
from tweet_sentiment.serve.status import worker_status
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
internals.prepare_server(config.header_timeout_seconds, config.drain_seconds)
limit_model_threads(args.model_threads)

# What a request may name (`model`), the default (`model_tag`) first; each fails here, at start, if unknown. So
# does a bad brands file.
MODELS: dict[str, ServedModel] = {
    spec: resolved(spec, "model") for spec in dict.fromkeys([args.model_tag, *filter(None, args.models.split(","))])
}
SERVED = MODELS[args.model_tag]
CHALLENGER = resolved(args.challenger, "challenger") if args.challenger else None
BRANDS = Brands.load()

PAGES = pages(
    lambda: TweetSentiment.inner.answering_now(),  # the versions answering now (the class BentoML wraps holds them)
    openapi=lambda: as_answered(TweetSentiment.openapi_spec.asdict(), models=list(MODELS)),
)


@bentoml.asgi_app(PAGES, path="/")  # /, /readme, /model-card, /docs, /docs.json
@bentoml.service(
    workers=args.workers,
    traffic={"timeout": config.request_timeout_seconds},
    metrics={"enabled": True},
    logging={"access": {"enabled": args.access_log}},
)
class TweetSentiment:
    bento_model = bentoml.models.BentoModel(SERVED.bento_tag)
    challenger_model = bentoml.models.BentoModel(CHALLENGER.bento_tag) if CHALLENGER else None
    answering: Answering | None = None  # the worker's (a worker has one instance): the pages read it

    def __init__(self) -> None:
        configure_azure_monitor()  # only when APPLICATIONINSIGHTS_CONNECTION_STRING is set
        challenger = (args.challenger, CHALLENGER) if CHALLENGER else None
        self.answering = Answering(MODELS, BRANDS, challenger, args.batching, args.max_batch_size)
        type(self).answering = self.answering  # for the pages, which have no instance
        self.feedback_store = FeedbackStore()
        self.alerts = AlertSender(self.feedback_store, SMTPSettings.from_env())
        self.alerts.start()
        tune_gc_for_serving()  # the model's heap out of the collector's way (docs/serving.md)
        self.answering.start()

    @classmethod
    def answering_now(cls) -> dict[str, ServedModel]:
        """Each model a request may name, the version answering now (empty before a worker has started)."""
        return cls.answering.answering_now() if cls.answering else {}

    @bentoml.on_shutdown
    def stop(self) -> None:
        """The challenger scores what is queued, the prediction log writes it all; the alert sender finishes
        what it is sending."""
        self.answering.stop()
        self.alerts.stop()
        TRANSLATOR.close()

    @bentoml.api(input_spec=PredictRequest)
    async def predict(self, tweet: Tweet, model: ModelChoice | None = None) -> Prediction:
        """Sentiment of one tweet, by the model named (default: the served one)."""
        return await self.answering.answer([tweet], model, one=True)

    @bentoml.api(input_spec=PredictBatchRequest)
    async def predict_batch(self, tweets: Tweets, model: ModelChoice | None = None) -> Predictions:
        """Sentiment of a list of tweets, in order, by the model named (default: the served one)."""
        return await self.answering.answer(tweets, model)

    @bentoml.api(input_spec=ExplainRequest)
    async def explain(self, tweet: Tweet, model: ModelChoice | None = None) -> ExplainedPrediction:
        """Why a label: the answer /predict gives, and each word's effect on its P(positive) (exact for the
        logistic regression, by occlusion for the others). Batched apart from predictions: never delays them."""
        return await self.answering.answer([tweet], model, one=True, explained=True)

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
        report = (tweet, predicted_label, true_label, wrong, model, idempotency_key, prediction_id)
        return take_feedback(self.feedback_store, self.alerts, self.answering, *report)

    @bentoml.api(input_spec=StatusRequest)
    def status(self) -> Status:
        """The served model, the alert state (null while the feedback store is down), the brands watched and
        which dependencies are degraded, for dashboards and the Streamlit page (reads only)."""
        return worker_status(self.answering, self.feedback_store)


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
    [*HEALTH_PATHS, *(api.route for api in TweetSentiment.apis.values()), *(route.path for route in PAGES.routes)]
)
if token := config.feedback_token:  # TWEETS_FEEDBACK_TOKEN: who may write feedback
    TweetSentiment.add_asgi_middleware(RequireToken, token=token.get_secret_value(), paths=frozenset({"/feedback"}))
