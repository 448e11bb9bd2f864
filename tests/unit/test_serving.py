"""Serving helpers: adaptive batching shared by routes, model threads per worker, answers encoded."""

import asyncio
import os

import bentoml
import pytest
from pydantic import TypeAdapter

from tweet_sentiment.serve.internals import adaptive_batching
from tweet_sentiment.serve.runtime import limit_model_threads, unbatched
from tweet_sentiment.serve.schemas import Prediction, Predictions, answered


def test_adaptive_batching_merges_concurrent_calls_and_answers_each_in_order():
    calls = []

    def lengths(tweets):
        calls.append(len(tweets))
        return [len(tweet) for tweet in tweets]

    requests = [["a" * i] for i in range(1, 41)] + [["b" * (i % 7 + 1) for i in range(100)]]

    async def everyone_at_once(predict):
        return await asyncio.gather(*(predict(request) for request in requests))

    answers = asyncio.run(everyone_at_once(adaptive_batching(lengths, max_batch_size=64, max_latency_ms=1000)))
    assert answers == [[len(t) for t in request] for request in requests]
    assert sum(calls) == 140 and max(calls) == 64  # the 100-tweet request was split across calls
    assert len(calls) < len(requests)  # and concurrent requests were merged

    calls.clear()
    assert asyncio.run(everyone_at_once(unbatched(lengths))) == answers
    assert sorted(calls) == sorted(len(request) for request in requests)  # one call per request


def test_a_failing_model_call_fails_the_requests_it_carried():
    def broken(tweets):
        raise RuntimeError("model crashed")

    async def call():
        return await adaptive_batching(broken, max_batch_size=64, max_latency_ms=1000)(["a tweet"])

    with pytest.raises(RuntimeError, match="model crashed"):
        asyncio.run(call())


def test_model_threads_are_limited_in_serving_workers_only(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "unset")  # restored (removed) after the test
    monkeypatch.delenv("OMP_NUM_THREADS")
    limit_model_threads(1)  # a test or a script importing the service: untouched
    assert "OMP_NUM_THREADS" not in os.environ
    monkeypatch.setattr(bentoml.server_context, "worker_index", 1)
    limit_model_threads(1)
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_answers_are_encoded_as_bentoml_renders_the_response_type():
    """`answered` skips the model objects, not a byte: the same JSON as BentoML's rendering of `Prediction`s."""
    answers = [
        {"id": "ab12-1", "label": "negative", "prob_positive": 0.1234567890123, "model": "tweet-lstm/3@champion",
         "language": "en", "warning": None, "brands": ["United"]},
        {"id": "ab12-2", "label": "positive", "prob_positive": 1.0, "model": "tweet-lstm/3@champion",
         "language": None, "warning": None, "brands": []},
        {"id": "ab12-3", "label": "negative", "prob_positive": 0.0, "model": "tweet-lstm/3@champion",
         "language": "fr", "warning": "the tweet looks 'fr', « pas » English \u2028 \"quoted\"",
         "brands": ["Air France", "SNCF"]},
    ]  # fmt: skip
    as_models = TypeAdapter(Predictions).dump_json([Prediction(**answer) for answer in answers])
    assert answered(answers).body == as_models
    assert answered(answers[0]).body == Prediction(**answers[0]).model_dump_json().encode()
    assert answered(answers).media_type == "application/json"
    assert TypeAdapter(Predictions).validate_json(answered(answers).body) == [Prediction(**a) for a in answers]
