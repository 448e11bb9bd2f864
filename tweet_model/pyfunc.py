"""The logged MLflow model: raw tweets in, P(positive) out, whatever the model family.

Cleaning happens here, inside the logged model, so every consumer (evaluation, BentoML,
``mlflow models serve``) gets the same preprocessing as training did. The model's config names its
family, the runtime settings training used and the decision threshold chosen on validation data.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import mlflow
import numpy as np

from tweet_model import DECISION_CUT, explain
from tweet_model.runtime import RUNTIMES, LogRegRuntime
from tweet_model.text import clean_tweet, clean_tweets

EXAMPLE_TWEETS = [
    "@united thanks for the upgrade, the crew was fantastic!",
    "@AmericanAir 3 hours on the tarmac and no update. Never again.",
]


def recentre(probs: np.ndarray, threshold: float) -> np.ndarray:
    """P(positive) shifted in log-odds so that ``threshold`` lands on DECISION_CUT, where every consumer cuts.

    The shift is subtracted in log-odds, so a tweet exactly at the threshold gets exactly 0.5 (a ratio of odds
    can round it to just under, and move it across the cut)."""
    probs = np.asarray(probs, dtype=np.float64)  # float32 would move tweets near the cut across it
    if threshold == DECISION_CUT:
        return probs
    probs = np.clip(probs, 1e-12, 1 - 1e-12)
    log_odds = np.log(probs) - np.log1p(-probs)  # the cut, 0.5, is log-odds 0
    return 1 / (1 + np.exp(np.log(threshold) - np.log1p(-threshold) - log_odds))


class TweetSentimentModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapping the runtime of the family named in the model config."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        config = context.model_config
        runtime = RUNTIMES[config["family"]]
        self.runtime = runtime(Path(context.artifacts["model"]), **config.get("predictor", {}))
        self.threshold = float(config.get("threshold", DECISION_CUT))

    def predict(self, model_input: list[str], params: dict | None = None) -> list[float]:
        return self.predict_proba(model_input)

    def explain(self, tweets: list[str]) -> list[explain.Explanation]:
        """Each tweet's P(positive), as ``predict_proba`` gives it, and each of its words' effect on it
        (tweet_model.explain): exact from the coefficients for the logistic regression, by occlusion otherwise."""
        if isinstance(self.runtime, LogRegRuntime):
            shift = np.log(self.threshold) - np.log1p(-self.threshold)
            return explain.by_coefficients(tweets, self.runtime.pipeline, clean_tweet, float(shift))
        return explain.by_occlusion(tweets, self.predict_proba)

    def predict_proba(self, texts: list[str]) -> list[float]:
        """P(positive) of each raw tweet, as ``predict`` answers, without the check of the input against its type
        hints that MLflow wraps ``predict`` in: for callers that have validated their tweets (the service)."""
        if not texts:
            return []
        return recentre(self.runtime.predict_proba(clean_tweets(texts)), self.threshold).tolist()


@dataclass(frozen=True)
class Logged:
    """What a consumer calls of a logged model: P(positive) of raw tweets, and their explanations."""

    predict_proba: Callable[[list[str]], list[float]]
    explain: Callable[[list[str]], list[explain.Explanation]]


def load_logged(path: str) -> Logged:
    """The model logged at ``path``: its own ``predict_proba``, which skips MLflow's check of the input (callers
    that validated their tweets: the server, the batch job), and ``explain``. A model logged before it had them is
    called through ``predict``, and explained by occlusion."""
    model = mlflow.pyfunc.load_model(path).unwrap_python_model()
    predict = getattr(model, "predict_proba", model.predict)
    return Logged(predict, getattr(model, "explain", None) or partial(explain.by_occlusion, predict=predict))


def load_predict_proba(path: str) -> Callable[[list[str]], list[float]]:
    return load_logged(path).predict_proba
