"""The registry decides what is served: the promotion rule, promotion and rollback by hand, resolving an alias."""

import uuid

import bentoml
import httpx
import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from harness.servers import running_server
from train.__main__ import main as train_main
from tweet_sentiment.core.models import CHAMPION, ModelNotFound, ModelSpec, bento_imports, resolve_model
from tweet_sentiment.lifecycle.promotion import (
    Evaluation,
    champion_version,
    fingerprint,
    promote,
    promote_if_better,
    rollback,
)
from tweet_sentiment.training.data import load_airline


@pytest.fixture
def registered(trained):
    """A fresh registered model whose versions are copies of the tiny logreg, and a maker of versions."""
    client = MlflowClient()
    name = f"rule-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    source = client.get_model_version(trained["logreg"].name, trained["logreg"].version).source

    def new_version() -> str:
        return str(client.create_model_version(name, source, trained["logreg"].run_id).version)

    yield name, new_version
    for model in bento_imports(name):
        bentoml.models.delete(model.tag)


TEST = load_airline().head(200)


def evaluation(accuracy: float, dataset: str = "airline", sampled: bool = False, test=TEST) -> Evaluation:
    return Evaluation(dataset, sampled, fingerprint(test), accuracy)


def champion(name: str) -> str | None:
    version = champion_version(name)
    return str(version.version) if version else None


def test_sampled_session_models_were_not_promoted_automatically(trained):
    client = MlflowClient()
    for model in trained.values():
        assert not model.promoted
        decision = client.get_model_version(model.name, model.version).tags["promotion_decision"]
        assert "sample" in decision


def test_better_takes_the_alias_worse_tied_sampled_or_other_data_do_not(registered):
    name, new_version = registered
    first, better, tie, worse, sampled, other = (new_version() for _ in range(6))
    assert promote_if_better(name, first, evaluation(0.80), TEST).promoted  # no champion yet
    assert promote_if_better(name, better, evaluation(0.85), TEST).promoted
    assert not promote_if_better(name, tie, evaluation(0.85), TEST).promoted  # ties keep the champion
    assert not promote_if_better(name, worse, evaluation(0.84), TEST).promoted
    assert not promote_if_better(name, sampled, evaluation(0.99, sampled=True), TEST).promoted
    decision = promote_if_better(name, other, evaluation(0.99, dataset="sentiment140"), TEST)
    assert not decision.promoted and "not comparable" in decision.reason
    assert champion(name) == better
    tags = MlflowClient().get_model_version(name, better).tags
    assert tags["promoted_by"] == "train (automatic)" and "beats champion" in tags["promotion_reason"]
    assert tags["test_fingerprint"] == fingerprint(TEST) and float(tags["test_accuracy"]) == 0.85


def test_champion_is_re_evaluated_on_a_different_test_split(registered):
    name, new_version = registered
    holder, challenger = new_version(), new_version()
    promote_if_better(name, holder, evaluation(0.99, test=TEST.head(50)), TEST.head(50))  # high on another split
    other_split = load_airline().tail(300)
    probs = mlflow.pyfunc.load_model(f"models:/{name}/{holder}").predict(other_split["text"].tolist())
    real = float(((pd.Series(probs) >= 0.5).astype(int).to_numpy() == other_split["label"].to_numpy()).mean())
    decision = promote_if_better(name, challenger, evaluation(real + 0.001, test=other_split), other_split)
    assert decision.promoted, decision.reason  # beats the champion's real 0.9x there, not its 0.99 elsewhere
    assert f"{real:.4f}" in decision.reason


def test_promote_and_rollback_by_hand_are_recorded(registered):
    name, new_version = registered
    v1, v2, v3 = new_version(), new_version(), new_version()
    train_main(["promote", name, v1, "--reason", "first", "--by", "alice"])
    train_main(["promote", name, v2, "--reason", "better on feedback", "--by", "bob"])
    promote(name, v3, reason="release 3", by="carol")
    client = MlflowClient()
    tags = client.get_model_version(name, v2).tags
    assert (tags["promoted_by"], tags["promotion_reason"]) == ("bob", "better on feedback")
    assert tags["promoted_at"].startswith("20")

    train_main(["rollback", name, "--reason", "complaints", "--by", "dave"])
    assert champion(name) == v2
    demoted = client.get_model_version(name, v3).tags
    assert (demoted["rolled_back_by"], demoted["rollback_reason"]) == ("dave", "complaints")
    assert client.get_model_version(name, v2).tags["promotion_reason"] == "rollback: complaints"
    assert rollback(name, "again") == v1
    with pytest.raises(ModelNotFound, match="nothing to roll back to"):
        rollback(name, "once more")
    with pytest.raises(SystemExit, match="has no version 99; its versions: 1, 2, 3"):
        train_main(["promote", name, "99", "--reason", "typo"])


def test_alias_resolves_to_the_bento_import_of_that_version(trained):
    served = resolve_model("tweet-lstm@champion")
    lstm = trained["lstm"]
    assert (served.bento_tag, served.name, served.version, served.alias) == (
        lstm.bento_tag,
        lstm.name,
        lstm.version,
        CHAMPION,
    )
    assert served.label == lstm.label(CHAMPION) and served.family == "lstm" and served.run_id == lstm.run_id


def test_alias_of_a_version_never_imported_is_imported_on_the_spot(registered):
    name, new_version = registered
    version = new_version()
    MlflowClient().set_registered_model_alias(name, "candidate", version)
    assert not bento_imports(name)
    served = resolve_model(f"{name}@candidate")
    assert bentoml.models.get(served.bento_tag).info.labels["mlflow_model_version"] == version
    assert resolve_model(f"{name}@candidate").bento_tag == served.bento_tag  # found, not imported again


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("tweet-lstm@champion", ModelSpec("tweet-lstm", alias="champion")),
        ("tweet-lstm/3", ModelSpec("tweet-lstm", version="3")),
        ("tweet-lstm/3@champion", ModelSpec("tweet-lstm", alias="champion", version="3")),  # a served label
        ("tweet-lstm:abc123", ModelSpec("tweet-lstm", bento_tag="tweet-lstm:abc123")),
        ("tweet-lstm", ModelSpec("tweet-lstm", bento_tag="tweet-lstm")),
    ],
)
def test_one_parser_reads_every_way_a_model_is_named(spec, parsed):
    assert ModelSpec.parse(spec) == parsed


def test_a_version_number_resolves_like_an_alias_and_a_bad_one_is_named(trained):
    lstm = trained["lstm"]
    assert resolve_model(f"tweet-lstm/{lstm.version}").bento_tag == lstm.bento_tag
    with pytest.raises(ModelNotFound, match="numeric version"):
        ModelSpec.parse("tweet-lstm/latest")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("tweet-lstm@nope", ["'tweet-lstm' has no alias 'nope'", "champion -> v", "its versions: 1"]),
        ("tweet-nope@champion", ["no registered model 'tweet-nope'", "tweet-lstm"]),
        ("tweet-nope:latest", ["'tweet-nope:latest' is not in the BentoML store", "tweet-lstm:"]),
    ],
)
def test_unknown_alias_model_or_tag_names_it_and_lists_what_exists(trained, spec, expected):
    with pytest.raises(ModelNotFound) as error:
        resolve_model(spec)
    for text in expected:
        assert text in str(error.value)


def test_a_restarted_server_serves_the_new_champion_and_a_rollback(registered):
    """The local case of picking up a promotion: a running server keeps its model; a restart resolves again."""
    name, new_version = registered
    v1, v2 = new_version(), new_version()
    promote(name, v1, reason="first")

    def answered_by(url: str) -> str:
        return httpx.post(f"{url}/predict", json={"tweet": "thanks for the upgrade"}).json()["model"]

    with running_server(f"model_tag={name}@champion") as url:
        assert answered_by(url) == f"{name}/{v1}@champion"
        promote(name, v2, reason="while serving")
        assert answered_by(url) == f"{name}/{v1}@champion"  # a running server keeps the model it started with
    with running_server(f"model_tag={name}@champion") as url:
        assert answered_by(url) == f"{name}/{v2}@champion"
    rollback(name, "back to v1")
    with running_server(f"model_tag={name}@champion") as url:
        assert answered_by(url) == f"{name}/{v1}@champion"
