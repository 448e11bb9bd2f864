"""The MLflow tracking store and the project's experiment, for training and for reading runs back."""

import mlflow
import pandas as pd

from tweet_sentiment.core.config import settings

EXPERIMENT = "tweet-sentiment"
MONITORING_EXPERIMENT = "tweet-sentiment-monitoring"  # drift reports and live comparisons


def setup_mlflow() -> None:
    """Point MLflow at the project's tracking store and experiment (created on first use)."""
    config = settings()
    mlflow.set_tracking_uri(config.tracking_uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=config.artifact_dir.as_uri())
    mlflow.set_experiment(EXPERIMENT)


def setup_monitoring_mlflow() -> None:
    """Point MLflow at the project's tracking store and the experiment of monitoring runs."""
    mlflow.set_tracking_uri(settings().tracking_uri)
    mlflow.set_experiment(MONITORING_EXPERIMENT)


def test_predictions(run_id: str) -> pd.DataFrame:
    """The logged held-out predictions of a run: text, label, source, prob_positive (and noisy, where logged)."""
    table = mlflow.artifacts.load_dict(f"runs:/{run_id}/predictions_test.json")
    return pd.DataFrame(table["data"], columns=table["columns"])
