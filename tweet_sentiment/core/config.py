"""Every setting the product reads from its environment, in one typed place (pydantic-settings).

Each comes from an environment variable or, where none is set, from a ``.env`` file beside this
project (see ``.env.example``), else the default here. docs/settings.md lists them.
"""

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]

SEED = 42
LABELS = ("negative", "positive")  # index = class id; the models output P(positive)
PREDICTION_LOG = "tweet_predictions"  # the log of served tweets and predictions (core.prediction_log)
EXTERNAL_TEST_SETS = ("tweeteval", "sentiment140_manual")  # never trained or tuned on


def _env(name: str, default, description: str):
    return Field(default, validation_alias=AliasChoices(name), description=description)


def _in_state_dir(name: str, default: str, description: str):
    """A path that defaults to ``default`` inside the state folder (TWEETS_STATE_DIR)."""
    return Field(
        default_factory=lambda fields: fields["state_dir"] / default,
        validation_alias=AliasChoices(name),
        description=f"{description} (default: {default} in TWEETS_STATE_DIR)",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=ROOT / ".env", extra="ignore", frozen=True)

    # Data, tracking, artifacts
    data_dir: Path = _env("TWEETS_DATA_DIR", ROOT.parent / "shared" / "data", "the datasets (downloaded if missing)")
    data_base_url: str = _env(
        "TWEETS_DATA_BASE_URL", "https://raw.githubusercontent.com", "where datasets download from (or a mirror)"
    )
    tracking_uri: str = _env("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'mlflow.db'}", "MLflow tracking store")
    artifact_dir: Path = _env("TWEETS_ARTIFACT_DIR", ROOT / "mlruns", "MLflow artifacts of new experiments")
    cache_dir: Path = _env("TWEETS_CACHE_DIR", ROOT / ".cache", "cached teacher scores")
    # What a server must keep across restarts, in one folder (a volume in the image)
    state_dir: Path = _env("TWEETS_STATE_DIR", ROOT, "the server's data: prediction log and SQLite feedback store")
    monitor_dir: Path = _in_state_dir("TWEETS_MONITOR_DIR", "monitoring", "the prediction log (drift report input)")
    # What one client may cost the server (docs/operations.md, Floods and faults)
    max_body_bytes: int = _env("TWEETS_MAX_BODY_BYTES", 4_000_000, "larger request bodies get 413 before they are read")
    body_timeout_seconds: float = _env("TWEETS_BODY_TIMEOUT_SECONDS", 15.0, "a body not whole by then gets 408")
    header_timeout_seconds: float = _env(
        "TWEETS_HEADER_TIMEOUT_SECONDS", 10.0, "a connection with no complete request headers by then is closed"
    )
    drain_seconds: float = _env(
        "TWEETS_DRAIN_SECONDS", 2.0, "after SIGTERM, idle keep-alive connections still answer a request this long"
    )
    request_timeout_seconds: float = _env(
        "TWEETS_REQUEST_TIMEOUT_SECONDS", 30.0, "a request not answered by then gets 504 (BentoML's traffic timeout)"
    )
    # Feedback and alerts
    feedback_db: Path = _in_state_dir("TWEETS_FEEDBACK_DB", "feedback.db", "SQLite feedback store")
    feedback_db_url: SecretStr | None = _env("TWEETS_FEEDBACK_DB_URL", None, "any SQLAlchemy URL; wins over the file")
    feedback_token: SecretStr | None = _env("TWEETS_FEEDBACK_TOKEN", None, "Bearer token POST /feedback needs")
    alert_threshold: int = _env("TWEETS_ALERT_THRESHOLD", 3, "alert on more wrong reports than this...")
    alert_window_seconds: float = _env("TWEETS_ALERT_WINDOW_SECONDS", 180.0, "...within this many seconds")
    smtp_host: str | None = _env("SMTP_HOST", None, "mail server; unset, alerts are kept unsent and logged")
    smtp_port: int = _env("SMTP_PORT", 25, "mail server port")
    smtp_user: str | None = _env("SMTP_USER", None, "SMTP login, if the server wants one")
    smtp_password: SecretStr | None = _env("SMTP_PASSWORD", None, "SMTP password")
    smtp_starttls: bool = _env("SMTP_STARTTLS", False, "upgrade the connection with STARTTLS")
    alert_email_from: str = _env("ALERT_EMAIL_FROM", "tweet-sentiment@localhost", "alert sender")
    alert_email_to: str = _env("ALERT_EMAIL_TO", "", "comma-separated alert recipients")
    # Brands watched for bad buzz (docs/brands.md)
    brands_file: Path | None = _env(
        "TWEETS_BRANDS_FILE", ROOT / "brands.yaml", "brands and the terms that name them (empty: no brand counted)"
    )
    # Champion and challenger (docs/lifecycle.md, Champion and challenger on live traffic)
    alias_poll_seconds: float = _env(
        "TWEETS_ALIAS_POLL_SECONDS", 5.0, "a server of NAME@ALIAS looks it up this often and follows it (0: never)"
    )
    shadow_queue_calls: int = _env(
        "TWEETS_SHADOW_QUEUE", 64, "model calls waiting for the challenger; past it they are skipped, and counted"
    )
    live_min_labelled: int = _env(
        "TWEETS_LIVE_MIN_LABELLED", 200, "promote --if-better-live needs this many labelled tweets..."
    )
    live_alpha: float = _env("TWEETS_LIVE_ALPHA", 0.05, "...and McNemar's test significant at this level")
    # French tweets (tweet_sentiment/core/french.py)
    french_min_accuracy: float = _env(
        "TWEETS_FRENCH_MIN_ACCURACY",
        0.80,
        "a version answers French tweets by translation from this French test accuracy",
    )
    # Telemetry and the Streamlit page
    applicationinsights_connection_string: SecretStr | None = _env(
        "APPLICATIONINSIGHTS_CONNECTION_STRING", None, "export traces and logs to Azure Application Insights"
    )
    service_url: str = _env("TWEET_SERVICE_URL", "http://localhost:3000", "the service the Streamlit page calls")
    # Set by BentoML for its workers (each server picks its own folder: serving.private_prometheus_dir)
    prometheus_multiproc_dir: str | None = _env(
        "PROMETHEUS_MULTIPROC_DIR", None, "set by the server for its workers; leave unset"
    )

    @field_validator("data_dir", "artifact_dir", "cache_dir", "state_dir", "monitor_dir", "feedback_db")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().resolve()

    @field_validator("brands_file", mode="before")
    @classmethod
    def _none_when_empty(cls, path: object) -> object:
        return None if path == "" else path

    def feedback_database_url(self) -> str:
        if self.feedback_db_url:
            return self.feedback_db_url.get_secret_value()
        return f"sqlite:///{self.feedback_db}"


def settings() -> Settings:
    """The current settings (read again on each call, so tests and tools can change the environment)."""
    return Settings()
