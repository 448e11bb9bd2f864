"""Why a label: POST /explain for every family, against what the models themselves give."""

import mlflow
import numpy as np
import pytest

from tweet_model.explain import by_occlusion, words
from tweet_model.text import clean_tweet
from tweet_sentiment.training.data import load_airline

SPECIAL = [
    "@united 😍😍 best crew https://t.co/x7Yq2Lp sooooo good!!",
    "🇫🇷 vol génial, équipage adorable ❤️ #AirFrance",
    "𝓯𝓪𝓷𝓬𝔂 letters 🧑‍🚀 and\ttabs\u3000and ideographic spaces",
]


def explained(http, tweet: str, model: str | None = None) -> dict:
    body = {"tweet": tweet} | ({"model": model} if model else {})
    response = http.post("/explain", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("family", ["logreg", "lstm", "transformer"])
def test_an_explanation_is_the_prediction_and_its_words_slice_the_tweet_exactly(http, trained, family):
    model = f"{trained[family].name}@champion"
    for tweet in SPECIAL:
        answer, prediction = explained(http, tweet, model), http.post("/predict", json={"tweet": tweet, "model": model})
        for field in ("label", "model", "language", "warning", "brands"):
            assert answer[field] == prediction.json()[field]
        assert answer["prob_positive"] == pytest.approx(prediction.json()["prob_positive"], abs=1e-6)
        assert answer["method"] == ("coefficients" if family == "logreg" else "occlusion")
        text = answer["explained_text"]
        assert [text[c["start"] : c["end"]] for c in answer["contributions"]] == text.split()
        if answer["explained"] == "tweet":
            assert text == tweet
        effects = [abs(c["effect"]) for c in answer["contributions"]]
        assert [effects[i] for i in answer["ranked"]] == sorted(effects, reverse=True)


def test_the_logistic_regressions_contributions_are_its_coefficients(http, trained):
    """Each word's term in the log-odds, from the pipeline's coefficients and TF-IDF weights by hand."""
    logged = mlflow.pyfunc.load_model(f"models:/{trained['logreg'].name}/{trained['logreg'].version}")
    python_model = logged.unwrap_python_model()
    vectorizer, classifier = python_model.runtime.pipeline[0], python_model.runtime.pipeline[-1]
    shift = np.log(python_model.threshold) - np.log1p(-python_model.threshold)
    for tweet in [*load_airline()["text"].head(20), "great great crew, great flight"]:
        answer = explained(http, tweet, f"{trained['logreg'].name}@champion")
        tokens = [clean_tweet(w.text).split() for w in words(tweet)]
        flat = [t for ts in tokens for t in ts]
        owner = [i for i, ts in enumerate(tokens) for _ in ts]
        x = vectorizer.transform([" ".join(flat)]).toarray()[0]
        names = {index: name for name, index in vectorizer.vocabulary_.items()}
        terms = np.zeros(len(tokens))
        for feature in np.flatnonzero(x):  # a feature's term, spread over the words of each occurrence
            gram = names[feature].split()
            spots = [k for k in range(len(flat) - len(gram) + 1) if flat[k : k + len(gram)] == gram]
            for k in spots:
                for i in owner[k : k + len(gram)]:
                    terms[i] += classifier.coef_[0][feature] * x[feature] / len(spots) / len(gram)
        log_odds = classifier.intercept_[0] + terms.sum() - shift
        expected = 1 / (1 + np.exp(-log_odds)) - 1 / (1 + np.exp(-(log_odds - terms)))
        assert [c["effect"] for c in answer["contributions"]] == pytest.approx(expected.tolist(), abs=1e-9)
        assert answer["prob_positive"] == pytest.approx(1 / (1 + np.exp(-log_odds)), abs=1e-9)


def test_leaving_out_the_lstms_most_negative_word_raises_p_positive(http, trained):
    model = f"{trained['lstm'].name}@champion"
    predict = mlflow.pyfunc.load_model(f"models:/{trained['lstm'].name}/{trained['lstm'].version}").predict
    checked = 0
    for tweet in load_airline()["text"].head(40):
        answer = explained(http, tweet, model)
        lowest = min(answer["contributions"], key=lambda c: c["effect"])
        if lowest["effect"] >= 0:
            continue  # no word pushed this one towards negative
        without = tweet[: lowest["start"]] + tweet[lowest["end"] :]
        assert predict([without])[0] > answer["prob_positive"]
        assert predict([without])[0] - answer["prob_positive"] == pytest.approx(-lowest["effect"], abs=1e-6)
        checked += 1
    assert checked >= 20


def test_explanations_are_deterministic_and_shared_model_calls_change_nothing(http, trained):
    tweets = list(load_airline()["text"].head(6))
    model = f"{trained['transformer'].name}@champion"
    alone = [explained(http, t, model)["contributions"] for t in tweets]
    predict = mlflow.pyfunc.load_model(f"models:/{trained['transformer'].name}/{trained['transformer'].version}")
    together = by_occlusion(tweets, predict.predict)  # every tweet's variants in one call
    for one, shared in zip(alone, together, strict=True):
        assert [c["effect"] for c in one] == pytest.approx(shared.effects, abs=1e-4)  # padding's float rounding
    assert explained(http, tweets[0], model)["contributions"] == alone[0]


def test_a_french_tweet_answered_through_english_is_explained_on_its_translation(http, trained, apertium):
    from tweet_sentiment.core.french import translate_to_english

    tweet = "Le vol a été annulé, je suis très mécontent !"
    answer = explained(http, tweet)
    assert answer["model"].endswith("+fr") and answer["explained"] == "english_translation"
    [english] = translate_to_english([tweet])
    assert answer["explained_text"] == english != tweet
    assert [english[c["start"] : c["end"]] for c in answer["contributions"]] == english.split()
    served = mlflow.pyfunc.load_model(f"models:/{trained['lstm'].name}/{trained['lstm'].version}").predict
    variants = [english[: c["start"]] + english[c["end"] :] for c in answer["contributions"]]
    [full, *without] = served([english, *variants])
    assert [c["effect"] for c in answer["contributions"]] == pytest.approx([(full - w) / 2 for w in without], abs=1e-6)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"tweet": ""},
        {"tweet": "   "},
        {"tweet": "x" * 1001},
        {"tweet": "a\x00b"},
        {"tweet": 3},
        {"tweet": "ok", "x": 1},
    ],
)
def test_bad_input_gets_the_same_400_as_predict(http, body):
    explain, predict = http.post("/explain", json=body), http.post("/predict", json=body)
    assert explain.status_code == predict.status_code == 400
    assert explain.json()["detail"] == predict.json()["detail"]  # the same fields refused, for the same reasons


def test_a_model_the_server_was_not_started_with_is_a_400_naming_those_it_was(http):
    response = http.post("/explain", json={"tweet": "fine", "model": "tweet-nothing@champion"})
    assert response.status_code == 400 and "tweet-lstm@champion" in response.json()["error"]
