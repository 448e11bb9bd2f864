"""French tweets: the hand-written set, Apertium's translation, and the routes compared on it."""

import shutil

import pandas as pd
import pytest

from tweet_sentiment.lifecycle import french_routes
from tweet_sentiment.lifecycle.french_routes import (
    FRENCH_TWEETS,
    TranslationUnavailable,
    chosen,
    compare,
    load_french,
    report,
    translate_to_english,
)

SEED = "Le vol a été annulé, je suis très mécontent !"


def test_the_french_set_is_balanced_split_and_distinct():
    tweets = pd.read_csv(FRENCH_TWEETS)
    assert len(tweets) >= 150 and tweets["text"].is_unique and tweets["id"].is_unique
    counts = tweets.groupby(["split", "label"]).size()
    assert set(counts.index) == {(s, label) for s in ("validation", "test") for label in ("negative", "positive")}
    assert counts.min() == counts.max()
    assert set(load_french("test")["label"]) == {0, 1}


def test_apertium_translates_each_tweet_on_its_own_line():
    english = translate_to_english([SEED, "Trop bien ce concert\nhier soir !", "@AirFrance merci"])
    assert len(english) == 3
    assert "flight" in english[0] and "dissatisfied" in english[0]
    assert "concert" in english[1] and "@AirFrance" in english[2]
    assert translate_to_english([]) == []


def test_without_apertium_the_error_names_the_packages(monkeypatch):
    monkeypatch.setattr(french_routes.shutil, "which", lambda name: None)
    assert shutil.which("apertium") is None  # the fault is in place
    with pytest.raises(TranslationUnavailable, match="apt-get install apertium apertium-fr-es apertium-eng-spa"):
        translate_to_english([SEED])


def test_routes_are_chosen_on_validation_and_reported_on_test(trained, tmp_path):
    results = compare(f"{trained['lstm'].name}@champion")
    assert len(results) == 4
    best = chosen(results)
    assert best.validation_accuracy == max(r.validation_accuracy for r in results)
    text = report(results, tmp_path).read_text()
    assert f"{best.route} (chosen)" in text and text.count("\n| ") == 1 + len(results)  # header and a row each
