"""Reference point: the tweet service's API with no model behind it (returns a constant).

bentoml serve benchmarks.echo_service:Echo --arg max_latency_ms=50
"""

import bentoml
from pydantic import BaseModel

from tweet_sentiment.core.config import settings
from tweet_sentiment.serve.runtime import tune_gc_for_serving


class EchoArgs(BaseModel):
    batching: bool = True
    max_batch_size: int = 64
    max_latency_ms: int = 1000
    access_log: bool = False  # as the tweet service, so both are served the same way
    workers: int = 1  # as the tweet service


args = bentoml.use_arguments(EchoArgs)
ANSWER = {"label": "positive", "prob_positive": 1.0, "model": "echo"}


@bentoml.service(
    workers=args.workers,
    traffic={"timeout": settings().request_timeout_seconds},
    logging={"access": {"enabled": args.access_log}},
)
class Echo:
    def __init__(self) -> None:
        tune_gc_for_serving()  # as the tweet service, so both are served the same way

    @bentoml.api
    def predict(self, tweet: str) -> dict:
        return ANSWER

    @bentoml.api(batchable=args.batching, max_batch_size=args.max_batch_size, max_latency_ms=args.max_latency_ms)
    def predict_batch(self, tweets: list[str]) -> list[dict]:
        return [ANSWER] * len(tweets)
