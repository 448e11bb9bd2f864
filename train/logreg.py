"""TF-IDF + logistic regression: the fast, strong baseline.  ``python -m train.logreg``"""

from dataclasses import dataclass
from pathlib import Path

import joblib
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from tweet_sentiment.config import SEED
from tweet_sentiment.data import Split
from tweet_sentiment.text import clean_tweets
from tweet_sentiment.train import Curves, TrainedModel, main


@dataclass(frozen=True)
class LogRegConfig:
    max_features: int = 50_000
    ngram_max: int = 2
    C: float = 4.0
    model_name: str = "tweet-logreg"


def fit(split: Split, config: LogRegConfig, folder: Path) -> Curves:
    pipeline = make_pipeline(
        TfidfVectorizer(
            token_pattern=r"\S+", ngram_range=(1, config.ngram_max), max_features=config.max_features, sublinear_tf=True
        ),
        LogisticRegression(C=config.C, max_iter=2000, random_state=SEED),
    )
    pipeline.fit(clean_tweets(split.train["text"].tolist()), split.train["label"])
    joblib.dump(pipeline, folder / "pipeline.joblib")
    return {}


def cli(argv: list[str] | None = None) -> TrainedModel:
    return main("logreg", LogRegConfig, fit, argv)


if __name__ == "__main__":
    cli()
