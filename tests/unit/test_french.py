"""French tweets: the hand-written set, Apertium's translation, and the routes compared on it."""

import shutil
import subprocess

import pandas as pd
import pytest

from tweet_sentiment.core import french
from tweet_sentiment.core.french import (
    ACCURACY_METRIC,
    TranslationUnavailable,
    answers_french,
    reroute,
    translate_to_english,
)
from tweet_sentiment.lifecycle.french_routes import FRENCH_TWEETS, chosen, compare, load_french, report

SEED = "Le vol a été annulé, je suis très mécontent !"


def test_the_french_set_is_balanced_split_and_distinct():
    tweets = pd.read_csv(FRENCH_TWEETS)
    assert len(tweets) >= 150 and tweets["text"].is_unique and tweets["id"].is_unique
    counts = tweets.groupby(["split", "label"]).size()
    assert set(counts.index) == {(s, label) for s in ("validation", "test") for label in ("negative", "positive")}
    assert counts.min() == counts.max()
    assert set(load_french("test")["label"]) == {0, 1}


@pytest.fixture
def no_apertium(monkeypatch):
    monkeypatch.setattr(french.shutil, "which", lambda name: None)
    french.apertium_installed.cache_clear()
    yield
    french.apertium_installed.cache_clear()


def test_apertium_translates_each_tweet_on_its_own_line(apertium):
    english = translate_to_english([SEED, "Trop bien ce concert\nhier soir !", "@AirFrance merci"])
    assert len(english) == 3
    assert "flight" in english[0] and "dissatisfied" in english[0]
    assert "concert" in english[1] and "@AirFrance" in english[2]
    assert translate_to_english([]) == []


def test_the_running_pipeline_translates_as_the_apertium_command_does(apertium):
    tweets = [*load_french("test")["text"], "Prix: 5$ [promo] @SNCF a/b \\o/ <3 {ok} ^^"]
    text = "\n".join(" ".join(tweet.split()) for tweet in tweets) + "\n"
    for mode in french.PIVOT:  # the command, with its deformatter, once per call
        text = subprocess.run(["apertium", "-u", mode], input=text, capture_output=True, text=True).stdout
    assert translate_to_english(tweets) == text.rstrip("\n").split("\n")
    first = french.TRANSLATOR._process.pid
    translate_to_english(["Merci"])
    assert french.TRANSLATOR._process.pid == first  # one pipeline, kept running


def test_without_apertium_the_error_names_the_packages(no_apertium):
    assert shutil.which("apertium") is None  # the fault is in place
    with pytest.raises(TranslationUnavailable, match="apt-get install apertium apertium-fr-es apertium-eng-spa"):
        translate_to_english([SEED])


def test_a_version_answers_french_from_the_bar_and_only_with_apertium(apertium, monkeypatch):
    assert answers_french({ACCURACY_METRIC: 0.80}, 0.80) and not answers_french({ACCURACY_METRIC: 0.79}, 0.80)
    assert not answers_french({}, 0.0)  # never measured
    monkeypatch.setattr(french.shutil, "which", lambda name: None)
    french.apertium_installed.cache_clear()
    try:
        assert not answers_french({ACCURACY_METRIC: 0.95}, 0.80)
    finally:
        french.apertium_installed.cache_clear()


def test_only_french_tweets_are_rerouted_and_the_lexicon_carries_the_seed(apertium):
    tweets = [SEED, "lost my bag again", "Merci pour ce vol parfait !"]
    probs, routed = reroute(lambda texts: [0.9] * len(texts), tweets, ["fr", "en", "fr"], [0.7, 0.2, 0.6])
    assert routed == [True, False, True] and probs[1] == 0.2  # English: the model's own answer
    assert probs[0] == pytest.approx(0.45)  # (0.9 on the English + 0.0 from the lexicon's -1) / 2: negative
    assert probs[2] > 0.5


def test_routes_are_chosen_on_validation_and_reported_on_test(trained, tmp_path):
    results = compare(f"{trained['lstm'].name}@champion")
    assert len(results) == 4
    best = chosen(results)
    assert best.validation_accuracy == max(r.validation_accuracy for r in results)
    text = report(results, tmp_path).read_text()
    assert f"{best.route} (chosen)" in text and text.count("\n| ") == 1 + len(results)  # header and a row each


def test_the_served_route_is_measured_at_training_and_recorded_on_demand(trained, apertium):
    import bentoml
    import mlflow

    from train import logreg
    from tweet_sentiment.core.models import MODEL_CARD, bento_model_for
    from tweet_sentiment.lifecycle.french_routes import record

    model = logreg.cli(["--sample", "300"])  # a version of its own: recording changes its run and its import
    measured = model.metrics[ACCURACY_METRIC]  # when it was trained, before its import, which carries it
    assert bentoml.models.get(model.bento_tag).info.metadata[ACCURACY_METRIC] == pytest.approx(measured, abs=1e-6)
    assert record(f"{model.name}/{model.version}")[ACCURACY_METRIC] == pytest.approx(measured)  # same route, model
    again = bento_model_for(model.name, model.version)
    assert str(again.tag) != model.bento_tag  # imported again, with the card logged again
    card = mlflow.artifacts.load_text(f"runs:/{model.run_id}/{MODEL_CARD}")
    assert (
        "## French tweets" in card and f"accuracy {measured:.3f}" in card and again.info.metadata["model_card"] == card
    )
