"""Faults against a real `bentoml serve`: the feedback database stopped and started again, the prediction log on a
full disk, SIGTERM to a worker and to the server. Predictions never fail; the outage is answered, counted, logged
once, survived; a stop asked for is carried out."""

import http.client
import json
import logging
import os
import signal
import time
import uuid

import httpx

from harness.servers import eventually, metric_total, running_server, server_process, worker_process
from tweet_sentiment.core.dependencies import Dependency

TWEET = "the crew was lovely"
WRONG = {"tweet": TWEET, "predicted_label": "negative", "true_label": "positive"}


def test_a_database_outage_answers_503_logs_once_and_the_server_recovers(trained, postgres, tmp_path):
    log = tmp_path / "server.log"
    env = {**os.environ, "TWEETS_FEEDBACK_DB_URL": postgres()}
    with running_server(env=env, log=log) as url, httpx.Client(base_url=url, timeout=30) as client:
        key = str(uuid.uuid4())
        stored = client.post("/feedback", json={**WRONG, "idempotency_key": key}).json()["id"]
        postgres.stop()
        try:
            answers = [client.post("/feedback", json=WRONG) for _ in range(20)]
            assert {a.status_code for a in answers} == {503}
            assert answers[0].json() == {"error": "the feedback store is unavailable; retry later"}
            assert answers[0].headers["retry-after"] == "5"
            assert client.post("/predict", json={"tweet": TWEET}).status_code == 200
            status = client.post("/status", json={}).json()
            assert status["degraded"] == ["feedback_store"] and status["wrong_in_window"] is None
            assert client.get("/readyz").status_code == 200  # predictions do not need the store
        finally:
            postgres.start()
        # Back without a restart; the client's retry of the first report stores nothing twice.
        assert client.post("/feedback", json={**WRONG, "idempotency_key": key}).json()["id"] == stored
        status = client.post("/status", json={}).json()
        assert status["degraded"] == [] and status["wrong_in_window"] == 1
        metrics = client.get("/metrics").text
    text = log.read_text()
    assert text.count("feedback_store unavailable") == 1 and text.count("feedback_store back after") == 1
    assert "Traceback" not in text
    assert 'tweet_dependency_failures_total{dependency="feedback_store"}' in metrics


def test_a_full_disk_drops_prediction_log_records_counted_never_failing_a_prediction(trained, tmp_path):
    monitor = tmp_path / "monitoring"
    data = monitor / "tweet_predictions" / "data"
    data.mkdir(parents=True)
    for worker in range(4):  # every write to /dev/full fails with ENOSPC, as on a full disk
        (data / f"data.{worker}.log").symlink_to("/dev/full")
    log = tmp_path / "server.log"
    env = {**os.environ, "TWEETS_MONITOR_DIR": str(monitor)}
    with running_server(env=env, log=log) as url, httpx.Client(base_url=url, timeout=30) as client:
        answers = [client.post("/predict_batch", json={"tweets": [TWEET] * 3}) for _ in range(30)]
        assert {a.status_code for a in answers} == {200}

        def dropped() -> float:  # the log is written off the request path: counted a moment later
            return metric_total(url, 'tweet_dependency_failures_total{dependency="prediction_log"}')

        assert eventually(lambda: dropped() >= 30, within=5), dropped()  # one record per model call, each counted
        assert client.post("/status", json={}).json()["degraded"] == ["prediction_log"]
    text = log.read_text()
    assert "--- Logging error ---" not in text and text.count("prediction_log unavailable") == 1


def test_an_outage_is_logged_when_it_starts_as_a_count_while_it_lasts_and_when_it_ends(caplog):
    dependency = Dependency("thing", report_every_s=0.2)
    with caplog.at_level(logging.WARNING, logger="tweet_sentiment.core.dependencies"):
        for _ in range(50):
            dependency.failed(OSError("down"))
        assert dependency.degraded
        time.sleep(0.25)
        dependency.failed(OSError("down"))
        dependency.succeeded()
        dependency.succeeded()
    assert not dependency.degraded
    assert [record.getMessage() for record in caplog.records] == [
        "thing unavailable: down",
        "thing still unavailable: 50 more failures",
        "thing back after 0 s, 51 failures",
    ]


def test_a_request_on_a_kept_alive_connection_after_sigterm_is_answered_then_closed(trained):
    with running_server() as url:
        worker = worker_process(url)
        address = httpx.URL(url)
        connection = http.client.HTTPConnection(address.host, address.port, timeout=10)
        body, headers = json.dumps({"tweet": TWEET}), {"Content-Type": "application/json"}
        connection.request("POST", "/predict", body, headers)
        assert connection.getresponse().read() and connection.sock is not None  # kept alive
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # shutdown under way: a plain uvicorn has closed the idle connection by now
        connection.request("POST", "/predict", body, headers)
        answer = connection.getresponse()
        assert answer.status == 200 and answer.getheader("connection") == "close"
        assert json.loads(answer.read())["label"] in ("positive", "negative")
        worker.wait(timeout=30)  # and the worker exits


def test_a_sigterm_while_a_dead_worker_is_replaced_stops_the_server(trained, tmp_path):
    log = tmp_path / "server.log"
    with running_server(log=log) as url:
        server = server_process(url)
        worker_process(url).kill()
        # The server logs the death as its process manager starts the replacement: a command that refused
        # the stop a signal asks for, until serve/internals.stop_on_every_sigterm. Watched closely, to signal
        # while that command runs.
        assert eventually(lambda: "a new one starts" in log.read_text(), 30, every=0.005), log.read_text()[-3000:]
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)  # not the 30 s until the harness's SIGKILL
