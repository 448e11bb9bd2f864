"""A model card for every version: written from its MLflow run, carried into BentoML, served at /model-card."""

import bentoml
import mlflow
import pytest

from tweet_sentiment.core.models import MODEL_CARD
from tweet_sentiment.lifecycle.model_card import confident_mistakes, for_version

SECTIONS = ("## Intended use", "## Training data", "## Metrics", "## Behavioural tests", "## Serving cost")


@pytest.mark.parametrize("family", ["logreg", "lstm", "transformer"])
def test_every_trained_version_logs_its_card_from_its_run(trained, family):
    result = trained[family]
    card = mlflow.artifacts.load_text(f"runs:/{result.run_id}/{MODEL_CARD}")
    assert card == for_version(result.name, result.version)  # the logged card is the version's, as rendered now
    assert card.startswith(f"# Model card: `{result.name}` version {result.version}")
    assert all(section in card for section in SECTIONS) and "## Known failure modes" in card
    assert "English" in card and "February 2015" in card  # what is out of scope: language, era
    # The metrics are the run's, as logged: the held-out accuracy, to the third decimal.
    assert f"{result.metrics['test_accuracy']:.3f}" in card
    assert f"{result.metrics['tweeteval_specificity']:.3f}" in card
    # ...and the card travels with the BentoML import, so a Bento serves it with no MLflow around.
    assert bentoml.models.get(result.bento_tag).info.metadata["model_card"] == card


def test_confident_mistakes_are_the_wrong_answers_furthest_from_the_cut():
    predictions = [
        {"text": "a", "label": 1, "prob_positive": 0.9},  # right
        {"text": "b", "label": 1, "prob_positive": 0.4},  # wrong, close to the cut
        {"text": "c", "label": 0, "prob_positive": 0.97},  # wrong, far from it
        {"text": "d", "label": 0, "prob_positive": 0.1},  # right
    ]
    assert [m["text"] for m in confident_mistakes(predictions)] == ["c", "b"]


def test_the_service_serves_its_models_card_and_links_it(http, trained):
    page = http.get("/model-card")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    lstm = trained["lstm"]
    assert f"tweet-lstm</code> version {lstm.version}" in page.text and "Intended use" in page.text
    assert 'href="/model-card"' in http.get("/").text
