"""The logged MLflow model: raw tweets in, P(positive) out, whatever the model family.

Cleaning happens here, inside the logged model, so every consumer (evaluation, BentoML,
``mlflow models serve``) gets the same preprocessing as training did. The model's config names its
family and carries the predictor settings training used.
"""

from pathlib import Path

import mlflow

from tweet_sentiment import logreg, lstm, transformer
from tweet_sentiment.family import ModelFamily, Predictor
from tweet_sentiment.text import clean_tweets

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (logreg.FAMILY, lstm.FAMILY, transformer.FAMILY)}

EXAMPLE_TWEETS = [
    "@united thanks for the upgrade, the crew was fantastic!",
    "@AmericanAir 3 hours on the tarmac and no update. Never again.",
]


class TweetSentimentModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapping the predictor of the family named in the model config."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        config = context.model_config
        predictor = FAMILIES[config["family"]].predictor
        self.predictor: Predictor = predictor(Path(context.artifacts["model"]), **config.get("predictor", {}))

    def predict(self, model_input: list[str], params: dict | None = None) -> list[float]:
        if not model_input:
            return []
        return self.predictor.predict_proba(clean_tweets(model_input)).astype(float).tolist()
