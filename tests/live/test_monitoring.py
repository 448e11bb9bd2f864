"""Feedback through the API, its metrics, the Prometheus rule, Azure export and the monitoring logs."""

import gzip
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import httpx
import pytest
import yaml

from harness.servers import eventually
from tweet_sentiment.core.config import ROOT, settings
from tweet_sentiment.serve.telemetry import configure_azure_monitor

WRONG = {"tweet": "@united lost my bag, thanks a lot", "predicted_label": "positive", "true_label": "negative"}


def metric_value(metrics: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in metrics.splitlines():
        match = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_feedback_is_stored_counted_and_answered(http, trained):
    before = metric_value(http.get("/metrics").text, "tweet_feedback_total", verdict="wrong")
    response = http.post("/feedback", json=WRONG)
    assert response.status_code == 200
    receipt = response.json()
    assert receipt["wrong"] is True and receipt["id"] > 0 and receipt["wrong_in_window"] >= 1
    right = http.post("/feedback", json={"tweet": "great crew", "predicted_label": "positive", "wrong": False})
    assert right.json()["wrong"] is False
    metrics = http.get("/metrics").text
    assert metric_value(metrics, "tweet_feedback_total", verdict="wrong") == before + 1
    assert metric_value(metrics, "tweet_feedback_total", verdict="right", model=trained["lstm"].label("champion")) >= 1


@pytest.mark.parametrize(
    "body",
    [
        {"tweet": "hi", "predicted_label": "positive"},  # neither true_label nor wrong
        {"tweet": "hi", "predicted_label": "positive", "true_label": "positive", "wrong": True},  # both
        {"tweet": "hi", "predicted_label": "neutral", "wrong": True},
        {"tweet": "", "predicted_label": "positive", "wrong": True},
    ],
)
def test_bad_feedback_is_a_400(http, body):
    assert http.post("/feedback", json=body).status_code == 400


def test_status_reports_model_and_alert(http, trained):
    status = http.post("/status", json={}).json()
    lstm = trained["lstm"]
    assert status["model"] == lstm.label("champion")
    assert status["served"] == {
        "name": lstm.name,
        "version": lstm.version,
        "alias": "champion",
        "bento_tag": lstm.bento_tag,
        "family": "lstm",
        "mlflow_run_id": lstm.run_id,
    }
    assert status["family"] == "lstm"
    assert (status["alert_threshold"], status["alert_window_seconds"]) == (3, 180)
    for _ in range(4):
        http.post("/feedback", json=WRONG)
    status = http.post("/status", json={}).json()
    assert status["alert_open"] is True and status["wrong_in_window"] > 3


def test_prometheus_rule_matches_the_exported_metrics(http):
    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    wrong_rule = next(r for r in rules if r["alert"] == "TweetSentimentWrongPredictions")
    match = re.fullmatch(r'sum\(increase\((\w+)\{verdict="wrong"\}\[3m\]\)\) > (\d+)', wrong_rule["expr"])
    assert match, wrong_rule["expr"]
    name, threshold = match.group(1), int(match.group(2))
    assert threshold == 3
    # Evaluate the expression on two scrapes of the real /metrics around 4 wrong reports.
    before = metric_value(http.get("/metrics").text, name, verdict="wrong")
    for _ in range(4):
        http.post("/feedback", json=WRONG)
    increase = metric_value(http.get("/metrics").text, name, verdict="wrong") - before
    assert increase == 4 and increase > threshold
    if shutil.which("promtool"):
        result = subprocess.run(
            ["promtool", "check", "rules", str(ROOT / "prometheus" / "alerts.yml")], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_predictions_are_logged_for_the_drift_report_even_after_feedback(http, trained):
    http.post("/feedback", json=WRONG)
    http.post("/predict", json={"tweet": "monitor me please"})
    folder = settings().monitor_dir / "tweet_predictions" / "data"

    def logged() -> list[dict]:  # the log is written off the request path, a moment later
        records = [json.loads(line) for log in folder.glob("*.log") for line in log.read_text().splitlines()]
        return [r for r in records if r.get("tweets") == ["monitor me please"]]

    assert eventually(lambda: bool(logged()), within=5), "no prediction-log record of the request"
    [record] = logged()  # one record per model call
    [prob] = record["probs_positive"]
    assert 0 <= prob <= 1 and record["model"] == trained["lstm"].label("champion")


def test_tracing_is_left_out_unless_sampled(service_module, http, monkeypatch):
    """BentoML's tracing middleware only where a sample rate is configured (internals.trace_only_when_sampled)."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    def traced() -> bool:  # to_asgi reads BentoML's configuration again
        app = service_module.TweetSentiment.to_asgi()
        return OpenTelemetryMiddleware in {middleware.cls for middleware in app.user_middleware}

    assert not traced()
    assert "X-BentoML-Request-ID" not in http.post("/predict", json={"tweet": "on time"}).headers
    monkeypatch.setenv("BENTOML_CONFIG_OPTIONS", "services.TweetSentiment.tracing.sample_rate=0.5")
    try:
        assert traced()
    finally:
        monkeypatch.delenv("BENTOML_CONFIG_OPTIONS")
        assert not traced()


def test_azure_export_is_off_without_a_connection_string(monkeypatch):
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
    assert configure_azure_monitor() is None


AZURE_CLIENT = """
import logging
from opentelemetry import trace
from tweet_sentiment.serve.telemetry import configure_azure_monitor
export = configure_azure_monitor()
logging.getLogger("tweet_sentiment.serve.alerting").warning("alert e-mail sent for incident 7")
with trace.get_tracer("tweet_sentiment").start_as_current_span("predict_batch"):
    pass
export.flush()
"""


def test_azure_export_sends_logs_and_spans_to_the_ingestion_endpoint():
    """A local stand-in for Application Insights' ingestion endpoint receives what the exporter sends."""
    received: list[dict] = []

    class Ingestion(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.extend(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"itemsReceived": 1, "itemsAccepted": 1, "errors": []}')

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Ingestion)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        f"IngestionEndpoint=http://127.0.0.1:{server.server_port}/",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    }
    subprocess.run([sys.executable, "-c", AZURE_CLIENT], cwd=ROOT, env=env, check=True, timeout=60)
    server.shutdown()
    kinds = {item["name"] for item in received}
    assert "Microsoft.ApplicationInsights.Message" in kinds
    assert any("predict_batch" in json.dumps(item) for item in received)
    assert any("alert e-mail sent for incident 7" in json.dumps(item) for item in received)


def test_feedback_model_labels_are_bounded_to_the_served_model(http, trained):
    for model in ("tweet-free-text-1", "tweet-free-text-2"):
        assert http.post("/feedback", json={**WRONG, "model": model}).status_code == 200
    assert http.post("/feedback", json={**WRONG, "model": "x" * 201}).status_code == 400
    metrics = http.get("/metrics").text
    assert "tweet-free-text" not in metrics
    assert metric_value(metrics, "tweet_feedback_total", verdict="wrong", model="other") >= 2


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "multipart/form-data; boundary=x", "text/plain", "application/xml"]
)
def test_a_body_that_is_not_json_is_a_415_not_a_500(http, content_type):
    for route in ("/predict", "/predict_batch", "/feedback", "/status"):
        response = http.post(route, content=b"tweet=hello", headers={"content-type": content_type})
        assert response.status_code == 415, (route, response.text)
        assert "JSON" in response.json()["error"]


def test_feedback_needs_the_token_when_one_is_set(trained, tmp_path):
    from harness.servers import running_server

    env = {**os.environ, "TWEETS_FEEDBACK_TOKEN": "s3cret", "TWEETS_FEEDBACK_DB": str(tmp_path / "feedback.db")}
    with running_server(f"model_tag={trained['logreg'].bento_tag}", env=env) as url:
        assert httpx.post(f"{url}/feedback", json=WRONG).status_code == 401
        wrong_token = httpx.post(f"{url}/feedback", json=WRONG, headers={"Authorization": "Bearer nope"})
        assert wrong_token.status_code == 401 and wrong_token.headers["www-authenticate"] == "Bearer"
        assert httpx.post(f"{url}/feedback", json=WRONG, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.post(f"{url}/predict", json={"tweet": "no token needed"}).status_code == 200


def test_servers_on_one_host_report_their_own_metrics(trained):
    from harness.servers import running_server

    lstm, logreg = trained["lstm"], trained["logreg"]
    with (
        running_server(f"model_tag={lstm.bento_tag}") as first,
        running_server(f"model_tag={logreg.bento_tag}") as second,
    ):
        for url in (first, second):
            for _ in range(3):
                httpx.post(f"{url}/predict", json={"tweet": "hello there"})
        first_metrics, second_metrics = httpx.get(f"{first}/metrics").text, httpx.get(f"{second}/metrics").text
    assert metric_value(first_metrics, "tweet_predictions_total", model=lstm.label()) == 3
    assert metric_value(second_metrics, "tweet_predictions_total", model=logreg.label()) == 3
    assert logreg.label() not in first_metrics and lstm.label() not in second_metrics
