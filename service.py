"""Tweet sentiment as a BentoML service.

bentoml serve                                           # the LSTM, adaptive batching on
bentoml serve --arg model_tag=tweet-logreg:latest       # any model in the store, by tag
bentoml serve --arg batching=false                      # one request = one model call
"""

from __future__ import annotations

from typing import Annotated, Literal

import bentoml
from bentoml.validators import ContentType
from pydantic import BaseModel, Field, StringConstraints

from tweet_sentiment.config import LABELS
from tweet_sentiment.predict import EXAMPLE_TWEETS
from tweet_sentiment.registry import resolve_model
from tweet_sentiment.serving import LoadShedding

MAX_TWEET_CHARS = 1_000  # a tweet is at most 280 characters; leave room for URLs and entities
MAX_TWEETS_PER_REQUEST = 256


class ServiceArgs(BaseModel):
    model_tag: str = "tweet-lstm:latest"
    batching: bool = True
    max_concurrency: int = 256  # per worker; past it requests get 503 at once instead of queueing
    access_log: bool = False  # one line per request costs ~8% CPU at 900 req/s; /metrics counts them anyway


args = bentoml.use_arguments(ServiceArgs)

Tweet = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TWEET_CHARS, pattern=r"^[^\x00]*$"),
    Field(
        description=f"Raw tweet text, 1 to {MAX_TWEET_CHARS} characters, no null bytes",
        json_schema_extra={"example": EXAMPLE_TWEETS[0]},
    ),
]
# Examples (OpenAPI 3.0 "example"), not defaults: the Swagger page shows them, and a request without the field is a 400.
Tweets = Annotated[
    list[Tweet],
    Field(min_length=1, max_length=MAX_TWEETS_PER_REQUEST, json_schema_extra={"example": EXAMPLE_TWEETS}),
]


class Prediction(BaseModel):
    label: Literal["negative", "positive"]
    prob_positive: float = Field(ge=0, le=1)
    model: str = Field(description="Tag of the model that answered")


# Declaring the content type matters for speed: without it BentoML rebuilds the JSON schema of a
# list output on every response to find its MIME type (20% of the server's CPU under load).
Predictions = Annotated[list[Prediction], ContentType("application/json")]

predictions_total = bentoml.metrics.Counter(
    name="tweet_predictions_total",
    documentation="Predictions served, by predicted label and model tag",
    labelnames=["label", "model"],
)


# Adaptive batching. The LSTM costs ~2 ms for 1 tweet and ~5 ms for 64 (predict_on_batch, 2 cores),
# so merging concurrent requests multiplies throughput. max_batch_size=64 keeps one call under ~10 ms.
# max_latency_ms is the dispatcher's shedding deadline, not a wait: it answers 503 for any request it
# predicts will exceed it. Its latency model starts at max_latency/15 per item and is fitted online,
# so a tight deadline (50 ms) sheds almost everything while it learns; 1 s sheds only real overload.
# See benchmarks/README.md for the measurements behind these numbers.
@bentoml.service(
    traffic={"timeout": 30},
    metrics={"enabled": True},
    logging={"access": {"enabled": args.access_log}},
)
class TweetSentiment:
    bento_model = bentoml.models.BentoModel(str(resolve_model(args.model_tag).tag))

    def __init__(self) -> None:
        self.model = bentoml.mlflow.load_model(self.bento_model)
        self.tag = str(self.bento_model.tag)
        # Warm-up before /readyz says yes. Keras traces a new graph for each of the first two batch
        # shapes it sees (~1 s each here): paid now, no early request waits behind it, or gets shed.
        self.ready = all(len(self.model.predict(EXAMPLE_TWEETS[:n])) == n for n in (1, 2))

    def __is_ready__(self) -> bool:
        return self.ready

    def _predict(self, tweets: list[str]) -> list[Prediction]:
        predictions = [
            Prediction(label=LABELS[int(p >= 0.5)], prob_positive=p, model=self.tag) for p in self.model.predict(tweets)
        ]
        for prediction in predictions:
            predictions_total.labels(label=prediction.label, model=self.tag).inc()
        return predictions

    @bentoml.api
    def predict(self, tweet: Tweet) -> Prediction:
        """Sentiment of one tweet."""
        return self._predict([tweet])[0]

    @bentoml.api(batchable=args.batching, max_batch_size=64, max_latency_ms=1000)
    def predict_batch(self, tweets: Tweets) -> Predictions:
        """Sentiment of a list of tweets; concurrent requests are merged into one model call."""
        return self._predict(tweets)


TweetSentiment.add_asgi_middleware(LoadShedding, max_concurrency=args.max_concurrency)
