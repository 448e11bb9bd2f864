"""TF-IDF + logistic regression: the fast, strong baseline."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tweet_sentiment.config import SEED
from tweet_sentiment.data import Split
from tweet_sentiment.family import Curves, ModelFamily
from tweet_sentiment.text import clean_tweets


@dataclass(frozen=True)
class LogRegConfig:
    max_features: int = 50_000
    ngram_max: int = 2
    C: float = 4.0
    model_name: str = "tweet-logreg"


def fit(split: Split, config: LogRegConfig, folder: Path) -> Curves:
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(
            token_pattern=r"\S+", ngram_range=(1, config.ngram_max), max_features=config.max_features, sublinear_tf=True
        ),
        LogisticRegression(C=config.C, max_iter=2000, random_state=SEED),
    )
    pipeline.fit(clean_tweets(split.train["text"].tolist()), split.train["label"])
    joblib.dump(pipeline, folder / "pipeline.joblib")
    return {}


class LogRegPredictor:
    """The pipeline saved with joblib."""

    def __init__(self, folder: Path):
        import joblib

        self.pipeline = joblib.load(folder / "pipeline.joblib")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self.pipeline.predict_proba(texts)[:, 1]


FAMILY = ModelFamily("logreg", LogRegConfig, fit, LogRegPredictor, ("scikit-learn", "joblib"))
