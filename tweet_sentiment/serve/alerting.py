"""E-mail alerts for incidents, sent outside the request path and retried until delivered.

SMTP settings come from the environment (``tweet_sentiment.core.config``; no secret in code).
"""

import logging
import smtplib
import threading
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy.exc import DBAPIError

from tweet_sentiment.core.config import settings
from tweet_sentiment.core.feedback import FeedbackStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SMTPSettings:
    host: str
    port: int = 25
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    sender: str = "tweet-sentiment@localhost"
    recipients: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> "SMTPSettings | None":
        """The settings, or None when SMTP_HOST is not set (alerts are then kept, unsent, and logged)."""
        config = settings()
        if not config.smtp_host:
            return None
        return cls(
            host=config.smtp_host,
            port=config.smtp_port,
            user=config.smtp_user or None,
            password=config.smtp_password.get_secret_value() if config.smtp_password else None,
            starttls=config.smtp_starttls,
            sender=config.alert_email_from,
            recipients=tuple(r.strip() for r in config.alert_email_to.split(",") if r.strip()),
        )


MAX_TWEETS_IN_EMAIL = 20  # a flood of reports must not make a flood of an e-mail


def alert_message(
    settings: SMTPSettings, incident: dict, total: int, wrong: list[dict], window_seconds: float
) -> EmailMessage:
    """The e-mail for one incident: the count, the window, and the latest tweets reported wrong."""
    message = EmailMessage()
    minutes = window_seconds / 60
    message["Subject"] = f"[tweet-sentiment] {total} wrong predictions reported within {minutes:g} minutes"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    shown = f" The latest {len(wrong)}:" if len(wrong) < total else ""
    lines = [
        f"Incident {incident['id']}: users reported {total} wrong predictions within {minutes:g} minutes.{shown}",
        "",
        *[
            f"- predicted {row['predicted_label']}"
            + (f", truly {row['true_label']}" if row["true_label"] else "")
            + f" ({row['model'] or 'unknown model'}): {row['tweet']}"
            for row in wrong
        ],
    ]
    message.set_content("\n".join(lines))
    return message


def send_email(settings: SMTPSettings, message: EmailMessage, timeout: float = 10) -> None:
    with smtplib.SMTP(settings.host, settings.port, timeout=timeout) as smtp:
        if settings.starttls:
            smtp.starttls()
        if settings.user:
            smtp.login(settings.user, settings.password or "")
        smtp.send_message(message)


class AlertSender:
    """Sends the e-mail of every unsent incident; failures are logged and retried later.

    Call ``send_pending()`` directly, or ``start()`` a background thread that runs it every
    ``retry_seconds`` and at once when ``wake()`` is called (after feedback opened an incident).
    """

    def __init__(self, store: FeedbackStore, settings: SMTPSettings | None = None, retry_seconds: float = 30):
        self.store = store
        self.settings = settings
        self.retry_seconds = retry_seconds
        self._wake, self._stopped = threading.Event(), threading.Event()

    def send_pending(self) -> int:
        """Close a calmed incident, then try every unsent one this process can claim; returns how many were sent."""
        self.store.evaluate()
        sent = 0
        if self.settings is None:  # said once, at start
            return 0
        for incident in self.store.unsent_incidents():
            if not self.store.claim(incident["id"]):
                continue
            since = incident["opened_at"] - self.store.rule.window_seconds
            total, wrong = self.store.wrong_count(since), self.store.recent_wrong(since, MAX_TWEETS_IN_EMAIL)
            message = alert_message(self.settings, incident, total, wrong, self.store.rule.window_seconds)
            try:
                send_email(self.settings, message)
            except (OSError, smtplib.SMTPException) as error:
                log.error(
                    "alert e-mail for incident %s failed (attempt %d), retrying in %gs: %s",
                    incident["id"],
                    incident["attempts"] + 1,
                    self.retry_seconds,
                    error,
                )
                self.store.mark_failed(incident["id"], repr(error), self.retry_seconds)
            else:
                self.store.mark_sent(incident["id"])
                sent += 1
                log.warning("alert e-mail sent for incident %s to %s", incident["id"], message["To"])
        return sent

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def start(self) -> threading.Thread:
        if self.settings is None:
            log.warning("SMTP_HOST is not set: alerts are opened and kept in the feedback store, not e-mailed")

        def loop() -> None:
            while not self._stopped.is_set():
                try:
                    self.send_pending()
                    self.store.health.succeeded()
                except DBAPIError as error:  # the database is down: counted, logged once, retried next round
                    self.store.health.failed(error)
                except Exception:  # never let the sender die: the next round retries
                    log.exception("alert sender round failed")
                self._wake.wait(self.retry_seconds)
                self._wake.clear()

        thread = threading.Thread(target=loop, name="alert-sender", daemon=True)  # ends with the worker
        thread.start()
        return thread
