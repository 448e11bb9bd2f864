"""A running server follows its alias: a promotion and a rollback reach it without a restart.

Slow: it trains a second LSTM version and starts a server.
"""

import os

import httpx
import pytest

from harness.servers import eventually, metric_total, running_server
from train import lstm
from tweet_sentiment.lifecycle.promotion import promote, rollback

pytestmark = pytest.mark.slow


def test_a_promotion_and_a_rollback_reach_a_running_server(trained, tmp_path):
    old = trained["lstm"]
    new = lstm.cli(["--sample", "300", "--epochs", "1", "--units", "8"])  # sampled: never promoted by itself
    env = {**os.environ, "TWEETS_ALIAS_POLL_SECONDS": "1", "TWEETS_FEEDBACK_DB": str(tmp_path / "feedback.db")}
    with running_server("model_tag=tweet-lstm@champion", env=env) as url:

        def answered_by() -> str:
            return httpx.post(f"{url}/predict", json={"tweet": "on time, thanks"}, timeout=30).json()["model"]

        assert answered_by() == f"tweet-lstm/{old.version}@champion"
        promote(new.name, new.version, reason="following test", by="tests")
        assert eventually(lambda: answered_by() == f"tweet-lstm/{new.version}@champion", within=60)
        status = httpx.post(f"{url}/status", json={}, timeout=30).json()
        assert status["served"]["version"] == new.version and status["model"] == answered_by()
        assert status["following"]["poll_seconds"] == 1 and status["following"]["failed_version"] is None
        rollback(new.name, reason="following test", by="tests")
        assert eventually(lambda: answered_by() == f"tweet-lstm/{old.version}@champion", within=60)
        assert metric_total(url, 'tweet_model_swaps_total{outcome="swapped"}') == 2
