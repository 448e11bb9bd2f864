"""Two replicas behind nginx (Debian's package), sharing a real PostgreSQL and SMTP server: a rolling model
update and back under 32 users, the same promotion and rollback followed by the replicas with no rollout, then a
replica killed (benchmarks.replicas, the procedure the README documents).

Slow: ~3 min; .ci/run installs nginx.
"""

import os
import shutil

import pytest
from sqlalchemy import create_engine, select

from benchmarks import replicas
from train import lstm
from tweet_sentiment.core.feedback import feedback_table
from tweet_sentiment.lifecycle.promotion import promote, rollback

pytestmark = pytest.mark.slow


def test_rolling_update_and_back_and_a_killed_replica_lose_no_request(trained, shared_servers_env):
    if not shutil.which("nginx"):
        message = "nginx is not installed (apt-get install nginx; .ci/run does)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    env, database, inbox = shared_servers_env
    old = trained["lstm"]
    new = lstm.cli(["--sample", "300", "--epochs", "1", "--units", "8"])  # sampled: never promoted by itself
    figures = replicas.run(
        "tweet-lstm@champion",
        "tweet-lstm@champion",
        {**env, "TWEETS_ALIAS_POLL_SECONDS": "1"},
        promote=lambda: promote(new.name, new.version, reason="rolling update test", by="tests"),
        roll_back=lambda: rollback(new.name, reason="rolling update test", by="tests"),
        follows=True,
    )

    # Not one request failed while each replica was replaced; the answers moved to the new version and back.
    phases = figures.phases
    assert all(answers and replicas.failed(answers) == 0 for answers in phases.values()), {
        name: [a for a in answers if a[2] != 200][:3] for name, answers in phases.items()
    }
    old_label, new_label = (f"tweet-lstm/{v}@champion" for v in (old.version, new.version))
    assert replicas.models(phases["before"]) == {old_label}
    assert replicas.models(phases["rolling out"]) == {old_label, new_label}
    assert replicas.models(phases["rolled out"]) == {new_label}
    assert replicas.models(phases["rolled back"]) == {old_label}
    # Following the alias, every replica converged on the promoted version, then on the rolled-back one.
    assert figures.followed == {"followed a promotion": [new_label] * 2, "followed the rollback": [old_label] * 2}
    assert replicas.models(phases["followed a promotion"]) == {old_label, new_label}
    # A killed replica (every process of it gone, its port refusing: Replica.kill checks): requests started
    # after that which nginx still tried on it were refused, and each was passed on to the live replica.
    assert figures.tries_of_killed.total() >= 1
    assert all(status == 200 for _, status in figures.tries_of_killed), figures.tries_of_killed
    # Every report was acknowledged in the end (sent again with its key), each is in PostgreSQL once, and one
    # e-mail went out for the burst.
    assert len(figures.feedback) >= 10 and all(status == 200 for status, _ in figures.feedback), figures.feedback
    acknowledged = {stored for _, stored in figures.feedback}
    assert len(acknowledged) == len(figures.feedback)
    with create_engine(database).connect() as db:
        assert acknowledged <= set(db.execute(select(feedback_table.c.id)).scalars())
    assert len(inbox.messages) == 1
