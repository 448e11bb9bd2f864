"""Ways to answer French tweets, compared on the hand-written French set (data/french_tweets): the route is
chosen on the validation split; accuracy, F1 and specificity are reported on the test split, with the cost.
Every route cuts P(positive) at the models' DECISION_CUT, as the server does.

The route chosen is served (tweet_sentiment/core/french.py, where the translation and the lexicon live).

    python -m train.french tweet-lstm@champion        # writes benchmarks/results/FRENCH.md
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from tweet_sentiment.core.config import LABELS, ROOT, settings
from tweet_sentiment.core.french import ACCURACY_METRIC, lexicon, route, translate_to_english
from tweet_sentiment.core.models import MODEL_CARD, ModelSpec, import_to_bento, model_label
from tweet_sentiment.lifecycle import model_card
from tweet_sentiment.lifecycle.evaluate import scores
from tweet_sentiment.lifecycle.figures import stamped

FRENCH_TWEETS = ROOT / "data" / "french_tweets" / "tweets.csv"

Route = Callable[[list[str]], np.ndarray]  # French tweets -> P(positive)


def load_french(split: str) -> pd.DataFrame:
    """The French set's ``validation`` or ``test`` split, labels as 0/1."""
    frame = pd.read_csv(FRENCH_TWEETS)
    frame = frame[frame["split"] == split].reset_index(drop=True)
    return frame.assign(label=frame["label"].map({LABELS[0]: 0, LABELS[1]: 1}))


def routes(spec: str) -> dict[str, Route]:
    """The routes compared: the English model on the French text (what is served today), the English model on
    Apertium's translation, the lexicon, and the mean of the last two (they err on different tweets: the
    translation garbles slang and negations, the lexicon misses what no word of it carries)."""
    model = ModelSpec.parse(spec)
    version = model.registered_version()
    predict = mlflow.pyfunc.load_model(f"models:/{model.name}/{version}").unwrap_python_model().predict
    label = model_label(model.name, version, model.alias)

    def translated(texts: list[str]) -> np.ndarray:
        return np.asarray(predict(translate_to_english(texts)))

    return {
        f"{label} on the French text": lambda texts: np.asarray(predict(texts)),
        f"{label} on Apertium's English": translated,
        "French lexicon (textblob-fr)": lexicon,
        f"the mean of both ({label}+fr)": lambda texts: route(predict, texts),  # what is served
    }


def served_route_metrics(predict: Callable[[list[str]], Sequence[float]]) -> dict[str, float]:
    """How the served route does with the English model ``predict`` on the French set, as run metrics: the
    server answers French tweets by the route only where ``french_test_accuracy`` reaches the bar."""
    served = measure("served", partial(route, predict), load_french("validation"), load_french("test"))
    metrics = {
        "french_val_accuracy": served.validation_accuracy,
        ACCURACY_METRIC: served.test["accuracy"],
        "french_test_f1": served.test["f1"],
        "french_test_specificity": served.test["specificity"],
        "french_ms_per_tweet": served.ms_per_tweet,
    }
    return {name: float(value) for name, value in metrics.items()}


def record(spec: str) -> dict[str, float]:
    """Measure the served route with the version ``spec`` names, log it to that version's run with its model
    card again, and import the version into BentoML again: servers read both from the import."""
    model = ModelSpec.parse(spec)
    client = mlflow.MlflowClient()
    version = model.registered_version(client)
    predict = mlflow.pyfunc.load_model(f"models:/{model.name}/{version}").unwrap_python_model().predict
    metrics = served_route_metrics(predict)
    run_id = client.get_model_version(model.name, version).run_id
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.log_text(run_id, model_card.for_version(model.name, version), MODEL_CARD)  # its French section
    import_to_bento(model.name, version, client)
    return metrics


@dataclass(frozen=True)
class RouteResult:
    route: str
    validation_accuracy: float
    test: dict[str, float]
    ms_per_tweet: float

    @property
    def servable(self) -> bool:
        return self.test["accuracy"] >= settings().french_min_accuracy


def measure(name: str, answer: Route, validation: pd.DataFrame, test: pd.DataFrame) -> RouteResult:
    """A route's validation accuracy, its scores on the test split, and its cost a tweet over both."""
    start = time.perf_counter()
    validation_probs, test_probs = answer(validation["text"].tolist()), answer(test["text"].tolist())
    ms = (time.perf_counter() - start) * 1e3 / (len(validation) + len(test))
    validation_accuracy = scores(validation["label"].to_numpy(), validation_probs)["accuracy"]
    return RouteResult(name, validation_accuracy, scores(test["label"].to_numpy(), test_probs), ms)


def compare(spec: str) -> list[RouteResult]:
    validation, test = load_french("validation"), load_french("test")
    return [measure(name, answer, validation, test) for name, answer in routes(spec).items()]


def chosen(results: list[RouteResult]) -> RouteResult:
    """The route with the best validation accuracy (the test split plays no part)."""
    return max(results, key=lambda result: result.validation_accuracy)


def report(results: list[RouteResult], out: Path) -> Path:
    best = chosen(results)
    rows = "\n".join(
        f"| {r.route}{' (chosen)' if r is best else ''} | {r.validation_accuracy:.3f} | {r.test['accuracy']:.3f} "
        f"| {r.test['f1']:.3f} | {r.test['specificity']:.3f} | {r.ms_per_tweet:.1f} | {'yes' if r.servable else 'no'} |"
        for r in results
    )
    path = out / "FRENCH.md"
    return stamped(
        path,
        f"""# French tweets: the routes compared

Generated by `python -m train.french` ({time.strftime("%Y-%m-%d")}) on the hand-written French set
(`data/french_tweets`: 80 validation, 80 test tweets, never trained on). Each route cuts P(positive) at 0.5, as
the server does. The route with the best validation accuracy is chosen; the test split is only reported. The
mean of both is the route servers use, for a version whose test accuracy with it reaches
{settings().french_min_accuracy:.2f} (TWEETS_FRENCH_MIN_ACCURACY); otherwise French tweets keep the English model's
answer with a warning. Cost: milliseconds a tweet over both splits, in calls of 80 tweets.

| route | validation accuracy | test accuracy | test F1 | test specificity | ms a tweet | servable |
|---|---:|---:|---:|---:|---:|---|
{rows}
""",
    )
