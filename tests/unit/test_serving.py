"""Serving helpers: adaptive batching shared by routes, model threads per worker, answers encoded."""

import asyncio
import os
import time

import bentoml
import pytest
from bentoml.exceptions import ServiceUnavailable
from pydantic import TypeAdapter

from tweet_sentiment.serve import internals
from tweet_sentiment.serve.answering import call_costs, explained_per_call, shedding_deadline_ms
from tweet_sentiment.serve.internals import adaptive_batching
from tweet_sentiment.serve.runtime import limit_model_threads, unbatched
from tweet_sentiment.serve.schemas import Prediction, Predictions, answered

FAST = [(1, 0.001), (64, 0.01)]  # a model's costs, (tweets a call, seconds)


def test_adaptive_batching_merges_concurrent_calls_and_answers_each_in_order():
    calls = []

    def lengths(tweets):
        calls.append(len(tweets))
        return [len(tweet) for tweet in tweets]

    requests = [["a" * i] for i in range(1, 41)] + [["b" * (i % 7 + 1) for i in range(100)]]

    async def everyone_at_once(predict):
        return await asyncio.gather(*(predict(request) for request in requests))

    answers = asyncio.run(everyone_at_once(adaptive_batching(lengths, 64, 1000, FAST)))
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
        return await adaptive_batching(broken, 64, 1000, FAST)(["a tweet"])

    with pytest.raises(RuntimeError, match="model crashed"):
        asyncio.run(call())


def test_a_slow_model_is_given_a_deadline_it_can_meet_and_sheds_nothing_under_ordinary_load():
    def slow(tweets):  # 10 ms a tweet, off the GIL as a runtime computes: 0.64 s a full call
        time.sleep(0.01 * len(tweets))
        return [0.5] * len(tweets)

    async def twelve_users(predict):  # 12 requests of 32 tweets at once: 6 full calls
        return await asyncio.gather(*(predict(["a tweet"] * 32) for _ in range(12)), return_exceptions=True)

    def shed(answers):
        return sum(isinstance(answer, ServiceUnavailable) for answer in answers)

    costs = call_costs(slow, 1, 64)
    assert [n for n, _ in costs] == [1, 64] and costs[1][1] >= 0.64
    deadline_ms = shedding_deadline_ms(costs[1][1])
    assert deadline_ms >= 2560  # four full calls
    # The fault first: the last requests are predicted past one deadline for every model.
    assert shed(asyncio.run(twelve_users(adaptive_batching(slow, 64, 1000, costs)))) > 0
    answers = asyncio.run(twelve_users(adaptive_batching(slow, 64, deadline_ms, costs)))
    assert shed(answers) == 0 and answers == [[0.5] * 32] * 12
    assert shedding_deadline_ms(0.002) == 1000  # a fast model keeps the floor


def test_a_slow_model_explains_fewer_tweets_a_call_under_a_longer_deadline():
    # Explaining a tweet of 280 characters, one thread: the LSTM ~5 ms, MiniLM ~0.25 s, MPNet ~3.8 s.
    assert [explained_per_call(s) for s in (0.005, 0.25, 3.8)] == [8, 4, 1]
    assert shedding_deadline_ms(8 * 0.005, floor_ms=5000) == 5000  # the fast keep the floor
    assert shedding_deadline_ms(1 * 3.8, floor_ms=5000) == 15200  # MPNet: four calls of one tweet
    assert shedding_deadline_ms(8.5) == 20_000  # never past the 30 s request timeout: 503 at once, not 504 later


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


def test_an_overloaded_server_answers_whole_requests_and_sheds_before_any_work(monkeypatch):
    computed, running = [], [0]

    def slow(tweets):  # 10 ms a tweet, off the GIL as a runtime computes, on two cores: three calls share them
        running[0] += 1
        time.sleep(0.01 * len(tweets) * max(1.0, running[0] / 2))
        running[0] -= 1
        computed.append(len(tweets))
        return [0.5] * len(tweets)

    async def eight_users(predict, seconds: float = 4) -> list[int]:
        """8 users sending 256 tweets (4 calls) again as each is answered or shed: more than the model can do."""
        answered, end = [], time.monotonic() + seconds

        async def user():
            while time.monotonic() < end:
                try:
                    answered.append(len(await predict(["a tweet"] * 256)))
                except ServiceUnavailable:
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(user() for _ in range(8)))
        return answered

    costs = call_costs(slow, 1, 64)
    deadline_ms = shedding_deadline_ms(costs[1][1])

    def run() -> tuple[int, int]:  # tweets answered, tweets the model computed
        computed.clear()
        answered = asyncio.run(eight_users(adaptive_batching(slow, 64, deadline_ms, costs)))
        return sum(answered), sum(computed)

    def bentoml_dispatcher(deadline_s, costs, max_batch_size, calls_at_once):  # as the service used it before
        dispatcher = internals.CorkDispatcher(
            int(deadline_s * 1000), max_batch_size, shared_sema=internals.NonBlockSema(calls_at_once),
            fallback=internals.overloaded, get_batch_size=len,
        )  # fmt: skip
        dispatcher.optimizer.o_stat.extend((n, seconds, 0.0) for n, seconds in costs)
        dispatcher.optimizer.trigger_refresh()
        return dispatcher

    with monkeypatch.context() as patched:  # the fault first: BentoML's dispatcher sheds parts of requests
        patched.setattr(internals, "AdmittingDispatcher", bentoml_dispatcher)
        answered_before, computed_before = run()
        assert computed_before > answered_before  # work done on requests that were then shed
    answered, computed_tweets = run()
    assert computed_tweets == answered  # requests are shed before any part of them is computed
    assert answered >= 0.75 * computed_before  # and the model is kept as busy: what it computes is answered
