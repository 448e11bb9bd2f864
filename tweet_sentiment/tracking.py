"""The MLflow tracking store and the project's experiment, for training and for reading runs back."""

import mlflow

from tweet_sentiment.config import settings

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
