"""Feedback storage and the e-mail alert, with an injectable clock and a real local SMTP server."""

import email
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, inspect, text

from tweet_sentiment.core.feedback import AlertRule, FeedbackStore, connect
from tweet_sentiment.serve.alerting import AlertSender, SMTPSettings


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    """A fresh feedback database: the embedded SQLite default, and a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return request.getfixturevalue("postgres")()


@pytest.fixture
def store(database, clock):
    return FeedbackStore(engine=connect(database), rule=AlertRule(), clock=clock)


def report_wrong(store: FeedbackStore, n: int, clock: Clock, every: float = 10.0) -> list:
    states = []
    for i in range(n):
        store.add(f"wrong tweet {i}", "positive", "negative", True, "tweet-lstm:v1")
        states.append(store.evaluate())
        clock.now += every
    return states


def test_three_wrong_is_quiet_the_fourth_opens_one_incident(store, clock):
    states = report_wrong(store, 6, clock)
    assert [s.wrong_in_window for s in states] == [1, 2, 3, 4, 5, 6]
    assert [s.opened_now for s in states] == [False, False, False, True, False, False]
    assert len({s.incident_id for s in states[3:]}) == 1
    assert len(store.unsent_incidents()) == 1


def test_right_predictions_and_old_reports_do_not_count(store, clock):
    for _ in range(10):
        store.add("fine", "positive", "positive", False, None)
    report_wrong(store, 3, clock, every=100.0)  # 3 wrong, but spread over 300 s
    report_wrong(store, 1, clock)
    assert store.evaluate().incident_id is None
    assert store.counts() == {"feedback": 14, "wrong": 4}


def test_incident_closes_when_the_window_calms_and_a_new_burst_opens_another(store, clock):
    first = report_wrong(store, 4, clock)[-1]
    clock.now += 181
    assert store.evaluate().incident_id is None
    second = report_wrong(store, 4, clock)[-1]
    assert second.opened_now and second.incident_id != first.incident_id


def test_workers_sharing_the_database_open_one_incident(database, clock):
    url = database
    workers = [FeedbackStore(engine=connect(url), rule=AlertRule(), clock=clock) for _ in range(2)]
    opened = []
    for i in range(6):
        worker = workers[i % 2]
        worker.add(f"tweet {i}", "negative", "positive", True, None)
        opened.append(worker.evaluate().opened_now)
    assert opened.count(True) == 1
    restarted = FeedbackStore(engine=connect(url), rule=AlertRule(), clock=clock)  # nothing lost on restart
    assert restarted.counts() == {"feedback": 6, "wrong": 6}


def test_an_evaluation_overtaken_by_a_burst_does_not_close_the_incident_it_opened(database, clock, monkeypatch):
    """Worker A starts evaluating; before it reads the incidents, worker B stores a burst and opens one.
    A must count that burst too, not close B's incident (a second incident, a second e-mail, would follow)."""
    from tweet_sentiment.core import feedback

    first, second = (FeedbackStore(engine=connect(database), rule=AlertRule(), clock=clock) for _ in range(2))
    read_incidents = feedback._open_incident_id
    overtaken = []

    def burst_first(db):
        if db.engine is first.engine and not overtaken:
            overtaken.append(report_wrong(second, 4, clock, every=0)[-1])
        return read_incidents(db)

    monkeypatch.setattr(feedback, "_open_incident_id", burst_first)
    state = first.evaluate()
    [burst] = overtaken
    assert burst.opened_now  # the burst came first and opened the incident
    assert state.incident_id == burst.incident_id and state.wrong_in_window == 4
    assert second.state().incident_id == burst.incident_id  # still open


def test_one_email_per_incident_with_the_tweets(store, clock, smtp):
    inbox, settings = smtp
    sender = AlertSender(store, settings)
    report_wrong(store, 5, clock)
    assert sender.send_pending() == 1
    assert sender.send_pending() == 0  # the same incident is never sent twice
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert "Subject: [tweet-sentiment] 5 wrong predictions reported within 3 minutes" in mail
    assert "To: oncall@example.com" in mail
    for i in range(5):
        assert f"wrong tweet {i}" in mail


def test_failed_send_is_logged_kept_and_retried(store, clock, smtp, caplog):
    inbox, settings = smtp
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    report_wrong(store, 4, clock)
    failing = AlertSender(store, SMTPSettings(host="127.0.0.1", port=dead_port), retry_seconds=30)
    with caplog.at_level(logging.ERROR):
        assert failing.send_pending() == 0
    assert "failed (attempt 1)" in caplog.text
    [incident] = store.unsent_incidents()
    assert incident["attempts"] == 1 and "Connection refused" in incident["last_error"]

    working = AlertSender(store, settings)
    assert working.send_pending() == 0  # still backing off
    clock.now += 31
    assert working.send_pending() == 1
    assert len(inbox.messages) == 1 and store.unsent_incidents() == []


def test_no_smtp_settings_keeps_the_alert_and_says_so_once(store, clock, caplog):
    report_wrong(store, 4, clock)
    sender = AlertSender(store, None, retry_seconds=0.05)
    with caplog.at_level(logging.WARNING):
        thread = sender.start()
        time.sleep(0.5)  # ~10 rounds of the sender
        sender.stop()
        thread.join(timeout=5)
        assert sender.send_pending() == 0
    assert caplog.text.count("SMTP_HOST is not set") == 1
    assert len(store.unsent_incidents()) == 1


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("SMTP_HOST", raising=False)
    assert SMTPSettings.from_env() is None
    monkeypatch.setenv("SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("SMTP_PORT", "587")
    monkeypatch.setenv("SMTP_STARTTLS", "true")
    monkeypatch.setenv("ALERT_EMAIL_TO", "a@example.com, b@example.com")
    settings = SMTPSettings.from_env()
    assert (settings.port, settings.starttls, settings.recipients) == (587, True, ("a@example.com", "b@example.com"))
    monkeypatch.setenv("TWEETS_ALERT_THRESHOLD", "10")
    monkeypatch.setenv("TWEETS_ALERT_WINDOW_SECONDS", "60")
    assert AlertRule.from_env() == AlertRule(threshold=10, window_seconds=60)


def test_feedback_becomes_labelled_tweets(store):
    store.add("said right", "positive", None, False, None)
    store.add("said wrong", "positive", None, True, None)
    store.add("corrected", "negative", "positive", True, None)
    assert [(r["text"], r["label"]) for r in store.labelled()] == [
        ("said right", 1),
        ("said wrong", 0),  # wrong flips a binary label
        ("corrected", 1),
    ]


def test_the_window_is_counted_per_second_not_per_report(store, clock):
    for i in range(1_000):
        store.add(f"flood {i}", "positive", "negative", True, None)
        clock.now += 0.001  # a thousand reports within one second
    from sqlalchemy import select

    from tweet_sentiment.core.feedback import wrong_counts_table

    with store.engine.connect() as db:
        assert db.execute(select(wrong_counts_table)).all() == [(1_000_000, 1_000)]
    assert store.wrong_count() == 1_000 and store.evaluate().wrong_in_window == 1_000
    clock.now += 180
    assert store.wrong_count() == 0


def test_a_flood_makes_one_short_email_with_the_total(store, clock, smtp):
    inbox, settings = smtp
    for i in range(500):
        store.add(f"flood tweet {i}", "positive", "negative", True, None)
        clock.now += 0.1
    assert store.evaluate().opened_now
    assert AlertSender(store, settings).send_pending() == 1
    [raw] = inbox.messages
    mail = email.message_from_string(raw).get_payload(decode=True).decode()
    assert "500 wrong predictions within 3 minutes" in mail and "The latest 20:" in mail
    assert mail.count("flood tweet") == 20 and "flood tweet 499" in mail and "flood tweet 479" not in mail


def test_state_only_reads_and_the_sender_closes_a_calmed_incident(store, clock):
    report_wrong(store, 4, clock)
    clock.now += 181
    assert store.state().incident_id is not None  # calm, but reading does not close it
    AlertSender(store, None).send_pending()
    assert store.state().incident_id is None


def test_two_servers_on_postgresql_store_every_feedback_and_send_one_email(trained, shared_servers_env):
    """Two `bentoml serve` processes (as two replicas would) share one PostgreSQL database."""
    import httpx

    from harness.servers import running_server

    env, url, inbox = shared_servers_env
    tag = f"model_tag={trained['logreg'].bento_tag}"
    with running_server(tag, env=env) as first, running_server(tag, env=env) as second:

        def report(i: int) -> int:
            body = {"tweet": f"concurrent wrong {i}", "predicted_label": "positive", "wrong": True}
            return httpx.post(f"{(first, second)[i % 2]}/feedback", json=body, timeout=30).status_code

        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(report, range(60))) == {200}
        deadline = time.monotonic() + 30
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # time enough for a second e-mail, if the guarantee were broken
    store = FeedbackStore(engine=connect(url))
    assert store.counts() == {"feedback": 60, "wrong": 60} and store.wrong_count(since=0) == 60
    assert len(inbox.messages) == 1
    assert store.unsent_incidents() == []


def test_a_retry_with_the_same_idempotency_key_stores_nothing_twice(store, clock):
    first = store.add("late again", "positive", "negative", True, "m", idempotency_key="k-1")
    again = store.add("late again", "positive", "negative", True, "m", idempotency_key="k-1")
    other = store.add("late again", "positive", "negative", True, "m", idempotency_key="k-2")
    assert again == first != other
    assert store.counts() == {"feedback": 2, "wrong": 2} and store.wrong_count() == 2


def test_concurrent_retries_with_one_key_store_one_row(database, clock):
    stores = [FeedbackStore(engine=connect(database), rule=AlertRule(), clock=clock) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda s: s.add("x", "positive", None, True, None, idempotency_key="same"), stores))
    assert len(ids) == 1 and stores[0].counts() == {"feedback": 1, "wrong": 1}


def test_a_store_made_before_idempotency_keys_and_prediction_ids_gets_the_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as db:  # the feedback table as the previous release created it
        db.execute(
            text(
                "CREATE TABLE feedback (id INTEGER PRIMARY KEY, created_at FLOAT NOT NULL, tweet TEXT NOT NULL, "
                "predicted_label VARCHAR(16) NOT NULL, true_label VARCHAR(16), wrong BOOLEAN NOT NULL, "
                "model VARCHAR(200))"
            )
        )
        db.execute(text("INSERT INTO feedback VALUES (1, 1.0, 'old', 'positive', NULL, 0, 'm')"))
    store = FeedbackStore(engine=connect(url), rule=AlertRule())
    assert store.add("new", "positive", None, True, None, idempotency_key="k") == 2
    assert store.add("new", "positive", None, True, None, idempotency_key="k") == 2
    assert store.counts() == {"feedback": 2, "wrong": 1}
    store.add("named", "negative", "negative", False, None, prediction_id="ab12-7")
    assert [r["prediction_id"] for r in store.labelled()] == [None, None, "ab12-7"]
    indexes = {index["name"] for index in inspect(store.engine).get_indexes("feedback")}
    assert {"uq_feedback_idempotency_key", "ix_feedback_prediction_id"} <= indexes
