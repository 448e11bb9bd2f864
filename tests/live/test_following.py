"""A running server follows its aliases: a promotion and a rollback reach every worker without a restart, and
the challenger in shadow follows its own alias.

Slow: it trains a second LSTM version and starts a server of two workers.
"""

import os

import httpx
import pytest
from mlflow import MlflowClient

from harness.servers import eventually, metric_total, running_server
from train import lstm
from tweet_sentiment.lifecycle.promotion import promote, rollback

pytestmark = pytest.mark.slow
SWAPPED = 'tweet_model_swaps_total{outcome="swapped"}'


def test_promotions_reach_every_worker_and_the_challenger_follows_its_alias(trained, tmp_path):
    old = trained["lstm"]
    new = lstm.cli(["--sample", "300", "--epochs", "1", "--units", "8"])  # sampled: never promoted by itself
    registry = MlflowClient()
    registry.set_registered_model_alias(old.name, "challenger", old.version)
    env = {**os.environ, "TWEETS_ALIAS_POLL_SECONDS": "1", "TWEETS_FEEDBACK_DB": str(tmp_path / "feedback.db")}
    args = ("model_tag=tweet-lstm@champion", "workers=2", "challenger=tweet-lstm@challenger")
    try:
        with running_server(*args, env=env, timeout=300) as url:

            def answered_by() -> set[str]:
                """Who answered 16 requests, each on a connection of its own: both workers take some."""
                body = {"tweet": "on time, thanks"}
                return {httpx.post(f"{url}/predict", json=body, timeout=30).json()["model"] for _ in range(16)}

            def challengers() -> set[str]:
                return {
                    httpx.post(f"{url}/status", json={}, timeout=30).json()["shadow"]["challenger"] for _ in range(16)
                }

            assert answered_by() == {f"tweet-lstm/{old.version}@champion"}
            promote(new.name, new.version, reason="following test", by="tests")
            assert eventually(lambda: answered_by() == {f"tweet-lstm/{new.version}@champion"}, within=60)
            assert eventually(lambda: metric_total(url, SWAPPED) == 2, within=30)  # one swap a worker
            status = httpx.post(f"{url}/status", json={}, timeout=30).json()
            assert status["served"]["version"] == new.version
            assert status["following"]["poll_seconds"] == 1 and status["following"]["failed_version"] is None

            registry.set_registered_model_alias(new.name, "challenger", new.version)
            assert eventually(lambda: challengers() == {f"tweet-lstm/{new.version}@challenger"}, within=90)
            assert eventually(lambda: metric_total(url, SWAPPED) == 4, within=30)
            assert status["shadow"]["following"]["poll_seconds"] == 1

            rollback(new.name, reason="following test", by="tests")
            assert eventually(lambda: answered_by() == {f"tweet-lstm/{old.version}@champion"}, within=60)
            assert eventually(lambda: metric_total(url, SWAPPED) == 6, within=30)
    finally:
        registry.delete_registered_model_alias(old.name, "challenger")
