"""Project-wide settings, read once from the environment with sensible local defaults."""

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SEED = 42
LABELS = ("negative", "positive")  # index = class id; the models output P(positive)
PREDICTION_LOG = "tweet_predictions"  # the bentoml.monitor log of served tweets and predictions


def _env_path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name, default)).expanduser().resolve()


@dataclass(frozen=True)
class Settings:
    """Where data, tracking and artifacts live. Every field can be overridden by env."""

    data_dir: Path = field(default_factory=lambda: _env_path("TWEETS_DATA_DIR", ROOT.parent / "shared" / "data"))
    tracking_uri: str = field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'mlflow.db'}")
    )
    artifact_dir: Path = field(default_factory=lambda: _env_path("TWEETS_ARTIFACT_DIR", ROOT / "mlruns"))
    cache_dir: Path = field(default_factory=lambda: _env_path("TWEETS_CACHE_DIR", ROOT / ".cache"))
    feedback_token: str | None = field(default_factory=lambda: os.environ.get("TWEETS_FEEDBACK_TOKEN") or None)
    monitor_dir: Path = field(default_factory=lambda: _env_path("TWEETS_MONITOR_DIR", ROOT / "monitoring"))


def settings() -> Settings:
    """Current settings (re-read each call so tests can change the environment)."""
    return Settings()
