"""TF-IDF + logistic regression: the fast, strong baseline (scikit-learn's trainers imported where they fit)."""

from dataclasses import dataclass
from pathlib import Path

from tweet_model.runtime import LogRegRuntime
from tweet_model.text import clean_tweets
from tweet_sentiment.core.config import SEED
from tweet_sentiment.training.data import Split
from tweet_sentiment.training.family import Curves, ModelFamily


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


# Served as trained: scikit-learn is the pipeline's own light runtime (no export, nothing to check).
FAMILY = ModelFamily("logreg", LogRegConfig, fit, LogRegRuntime, ("scikit-learn", "joblib"))
