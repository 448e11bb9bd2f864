"""The logged MLflow model: raw tweets in, P(positive) out, whatever the model family.

Cleaning happens here, inside the logged model, so every consumer (evaluation, BentoML,
``mlflow models serve``) gets the same preprocessing as training did.
"""

from pathlib import Path
from typing import Protocol

import mlflow
import numpy as np

from tweet_sentiment.text import clean_tweets

EXAMPLE_TWEETS = [
    "@united thanks for the upgrade, the crew was fantastic!",
    "@AmericanAir 3 hours on the tarmac and no update. Never again.",
]


class Predictor(Protocol):
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """P(positive) for each cleaned tweet."""


class SklearnPredictor:
    """TF-IDF + logistic regression pipeline saved with joblib."""

    def __init__(self, folder: Path):
        import joblib

        self.pipeline = joblib.load(folder / "pipeline.joblib")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self.pipeline.predict_proba(texts)[:, 1]


class KerasPredictor:
    """Keras model whose first layer is the TextVectorization: it takes strings."""

    def __init__(self, folder: Path):
        import keras

        self.model = keras.saving.load_model(folder / "model.keras")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        # predict_on_batch: one graph call, no tf.data pipeline (model.predict costs ms per call).
        batch = np.asarray(texts, dtype=object)
        return np.asarray(self.model.predict_on_batch(batch)).reshape(-1)


class TransformerPredictor:
    """Hugging Face sequence classifier (DistilBERT, MiniLM...) saved with save_pretrained."""

    def __init__(self, folder: Path, max_length: int = 64):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        self.max_length = max_length

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        with self.torch.inference_mode():
            logits = self.model(**tokens).logits
        return self.torch.softmax(logits, dim=-1)[:, 1].numpy()


PREDICTORS: dict[str, type] = {
    "logreg": SklearnPredictor,
    "lstm": KerasPredictor,
    "transformer": TransformerPredictor,
}


class TweetSentimentModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapping one of the predictors above."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        family = context.model_config["family"]
        self.predictor: Predictor = PREDICTORS[family](Path(context.artifacts["model"]))

    def predict(self, model_input: list[str], params: dict | None = None) -> list[float]:
        if not model_input:
            return []
        return self.predictor.predict_proba(clean_tweets(model_input)).astype(float).tolist()
