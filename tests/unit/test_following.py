"""Following an alias (serve/following.py): a move is swapped in once loaded, a version that fails is kept out
and tried again only after the alias has moved again, and a registry that is down changes nothing."""

import pytest

from tweet_sentiment.core.models import ModelSpec, ServedModel
from tweet_sentiment.serve.following import AliasFollower, LoadedModel, alias_poll_seconds

BROKEN = "3"  # a version whose model fails to load


class Registry:
    """The alias's version as the registry says it, or an error while it is down."""

    def __init__(self, version: str) -> None:
        self.version: str | Exception = version

    def lookup(self) -> str:
        if isinstance(self.version, Exception):
            raise self.version
        return self.version


def loaded(version: str) -> LoadedModel:
    model = ServedModel(f"tweet-lstm:v{version}", "tweet-lstm", version, "champion", "lstm", "run")
    return LoadedModel(model, lambda tweets: [float(version) / 10] * len(tweets))


@pytest.fixture
def follower():
    registry, loads, served = Registry("1"), [], [loaded("1")]

    def load(version: str) -> LoadedModel:
        loads.append(version)
        if version == BROKEN:
            raise RuntimeError("model.onnx is not a model ONNX Runtime can load")
        return loaded(version)

    follower = AliasFollower("tweet-lstm@champion", "1", registry.lookup, load, served.append, poll_s=60)
    return follower, registry, loads, served


def test_a_moved_alias_is_swapped_in_once_loaded(follower):
    follower, registry, loads, served = follower
    follower.check()
    assert loads == [] and len(served) == 1  # not moved: nothing loaded
    registry.version = "2"
    follower.check()
    follower.check()
    assert loads == ["2"] and [s.model.label for s in served] == ["tweet-lstm/1@champion", "tweet-lstm/2@champion"]
    assert served[-1].predict_proba(["a", "b"]) == [0.2, 0.2]
    assert follower.status().failed_version is None and follower.status().checked_at is not None


def test_a_version_that_fails_is_kept_out_until_the_alias_moves_again(follower, caplog):
    follower, registry, loads, served = follower
    registry.version = BROKEN
    for _ in range(3):
        follower.check()
    assert loads == [BROKEN] and len(served) == 1  # tried once, the old model still served
    status = follower.status()
    assert status.failed_version == BROKEN and "ONNX Runtime can load" in status.failed_reason
    assert sum("not served" in r.message for r in caplog.records) == 1  # said once
    registry.version = "1"  # rolled back, then promoted again: tried again
    follower.check()
    registry.version = BROKEN
    follower.check()
    assert loads == [BROKEN, BROKEN] and len(served) == 1
    registry.version = "4"
    follower.check()
    assert served[-1].model.version == "4" and follower.status().failed_version is None


def test_a_registry_that_is_down_changes_nothing(follower):
    follower, registry, loads, served = follower
    registry.version = ConnectionError("registry unreachable")
    follower.check()
    assert AliasFollower.registry.degraded and loads == [] and len(served) == 1
    registry.version = "2"
    follower.check()
    assert not AliasFollower.registry.degraded and served[-1].model.version == "2"


@pytest.mark.parametrize(
    ("spec", "follows"),
    [
        ("tweet-lstm@champion", True),
        ("tweet-lstm/3@champion", False),
        ("tweet-lstm/3", False),
        ("tweet-lstm:abc", False),
    ],
)
def test_only_an_alias_is_followed(spec, follows, monkeypatch):
    monkeypatch.setenv("TWEETS_ALIAS_POLL_SECONDS", "2.5")
    assert alias_poll_seconds(ModelSpec.parse(spec)) == (2.5 if follows else 0)
    monkeypatch.setenv("TWEETS_ALIAS_POLL_SECONDS", "0")
    assert alias_poll_seconds(ModelSpec.parse(spec)) == 0
