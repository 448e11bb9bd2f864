"""Bad input against a real `bentoml serve` on PostgreSQL: refused at the edge with 400 in the one error shape,
never answered as an outage; a stored report is never answered 503; a worker's death is logged and counted."""

import json
import os
import signal
import socket
import time
import uuid

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import DBAPIError

from harness.servers import metric_total, running_server, worker_process
from tweet_sentiment.core.feedback import FeedbackStore, connect, feedback_table, is_outage

REPORT = {"tweet": "the crew was lovely", "predicted_label": "negative", "wrong": True}
NUL, LONE_SURROGATE = "a\x00b", "a\ud800b"


@pytest.fixture(scope="module")
def server(trained, postgres, tmp_path_factory):
    """A server whose feedback store is a fresh PostgreSQL database; yields (client, database URL, log path)."""
    database = postgres()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "TWEETS_FEEDBACK_DB_URL": database}
    with running_server(env=env, log=log) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, database, log


def raw_json(**fields: str) -> bytes:
    """A JSON body as a client writes it: a lone surrogate escaped (``\\ud800``), which json.dumps allows."""
    return json.dumps(fields).encode()


def failures(client: httpx.Client) -> float:
    return metric_total(str(client.base_url), 'tweet_dependency_failures_total{dependency="feedback_store"}')


@pytest.mark.parametrize("field", ["prediction_id", "model", "idempotency_key", "tweet"])
@pytest.mark.parametrize("bad", [NUL, LONE_SURROGATE], ids=["NUL", "lone surrogate"])
def test_text_a_store_cannot_hold_is_a_400_at_the_edge_not_an_outage(server, field, bad):
    client, database, _ = server
    before = failures(client)
    with create_engine(database).connect() as db:
        rows = db.execute(select(func.count()).select_from(feedback_table)).scalar()
    body = {**REPORT, field: bad}
    answer = client.post("/feedback", content=raw_json(**body), headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    [detail] = answer.json()["detail"]
    if bad == NUL:
        assert detail["loc"] == [field] and detail["type"] == "string_pattern_mismatch"
    else:  # not UTF-8: pydantic's JSON parser refuses the body as a whole
        assert detail["type"] == "json_invalid" and "hex escape" in detail["msg"]
    assert "retry-after" not in answer.headers
    assert client.post("/status", json={}).json()["degraded"] == []
    assert failures(client) == before
    with create_engine(database).connect() as db:
        assert db.execute(select(func.count()).select_from(feedback_table)).scalar() == rows


def test_a_database_error_caused_by_the_data_is_not_an_outage_and_its_text_never_carries_the_tweet(postgres):
    """What the edge lets through never reaches this; if it did, the route answers 400 for such an error."""
    store = FeedbackStore(connect(postgres()))
    with pytest.raises(DBAPIError) as refused:
        store.add("my secret tweet \x00", "negative", None, True, None)  # PostgreSQL's text cannot hold NUL
    assert not is_outage(refused.value)
    assert "my secret tweet" not in str(refused.value)  # logged and counted texts carry no client data


def test_an_unreachable_database_is_an_outage(postgres):
    url = postgres()
    store = FeedbackStore(connect(url))
    postgres.stop()
    try:
        with pytest.raises(DBAPIError) as down:
            store.add("a tweet", "negative", None, True, None)
    finally:
        postgres.start()
    assert is_outage(down.value)


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        ({**REPORT, "wrong": "yes"}, "bool_type", "wrong"),
        ({**REPORT, "wrong": 1}, "bool_type", "wrong"),
        ({**REPORT, "wrong": "true"}, "bool_type", "wrong"),
        ({**REPORT, "predicted_label": "Negative"}, "literal_error", "predicted_label"),
        ({**REPORT, "wrong": None, "true_label": 1}, "literal_error", "true_label"),
        ({**REPORT, "colour": "blue"}, "extra_forbidden", "colour"),
    ],
)
def test_values_are_strict_and_unknown_fields_are_refused_by_name(server, body, error, field):
    client, _, _ = server
    answer = client.post("/feedback", json=body)
    assert answer.status_code == 400
    assert answer.json()["detail"][0]["type"] == error and answer.json()["detail"][0]["loc"] == [field]


@pytest.mark.parametrize("path", ["/predict", "/predict_batch", "/status"])
def test_every_route_refuses_unknown_fields_and_says_so_in_the_openapi(server, path):
    client, _, _ = server
    body = {"/predict": {"tweet": "ok"}, "/predict_batch": {"tweets": ["ok"]}, "/status": {}}[path]
    answer = client.post(path, json={**body, "verbose": True})
    assert answer.status_code == 400 and answer.json()["detail"][0]["loc"] == ["verbose"]
    schema = client.get("/docs.json").json()["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    assert schema["schema"]["additionalProperties"] is False


def test_the_openapi_states_strict_booleans_and_refuses_nul_in_stored_text(server):
    client, _, _ = server
    operation = client.get("/docs.json").json()["paths"]["/feedback"]["post"]
    properties = operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert properties["wrong"]["type"] == "boolean"
    for field in ("tweet", "prediction_id", "model", "idempotency_key"):
        assert properties[field]["pattern"].startswith("^[^\\x00]"), field


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/predict", 405), ("PUT", "/feedback", 405), ("GET", "/nope", 404)]
)
def test_framework_errors_are_json_with_error_too(server, method, path, status):
    client, _, _ = server
    answer = client.request(method, path)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"].startswith(("method not allowed", "not found"))
    if status == 405:
        assert answer.headers["allow"] == "POST"


def test_a_request_the_http_parser_cannot_read_is_a_json_400(server):
    client, _, _ = server
    with socket.create_connection((client.base_url.host, client.base_url.port), timeout=10) as connection:
        connection.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}")
        answer = b""
        while chunk := connection.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"].startswith("malformed HTTP request")


def test_a_report_stored_when_the_alert_state_cannot_be_read_is_answered_with_its_id(trained, postgres):
    """The insert succeeds and the read that follows fails (here: the server's role may not read incidents):
    the answer is the stored row with the alert state unknown, never a 503 a client would retry."""
    database = postgres()
    connect(database).dispose()  # the tables, created by their owner
    role = f"writer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database.replace("postgresql+psycopg", "postgresql"), autocommit=True) as db:
        db.execute(f"CREATE ROLE {role} LOGIN")
        db.execute(f"GRANT SELECT, INSERT, UPDATE ON feedback, wrong_counts TO {role}")
        db.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    limited = database.replace("//tweets@", f"//{role}@")
    env = {**os.environ, "TWEETS_FEEDBACK_DB_URL": limited}
    with running_server(env=env) as served, httpx.Client(base_url=served, timeout=30) as client:
        answer = client.post("/feedback", json={**REPORT, "idempotency_key": "k-1"})
        assert answer.status_code == 200, answer.text
        receipt = answer.json()
        assert receipt["wrong_in_window"] is None and receipt["alert_open"] is None  # the fault happened
        assert client.post("/status", json={}).json()["degraded"] == ["feedback_store"]
        # The client has its id: a retry with the key returns the same row.
        assert client.post("/feedback", json={**REPORT, "idempotency_key": "k-1"}).json()["id"] == receipt["id"]
    with create_engine(database).connect() as db:
        stored = db.execute(select(feedback_table.c.id, feedback_table.c.idempotency_key)).all()
    assert [tuple(row) for row in stored] == [(receipt["id"], "k-1")]


def test_a_worker_that_dies_is_logged_at_error_with_its_pid_and_signal_and_counted(trained, tmp_path):
    log = tmp_path / "server.log"
    with running_server(log=log) as url, httpx.Client(base_url=url, timeout=30) as client:
        worker = worker_process(url)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)  # the fault happened: that worker is gone
        deadline = time.monotonic() + 120
        while "tweet_worker_deaths_total" not in (metrics := _metrics_or_empty(client)):
            assert time.monotonic() < deadline, "no worker answered /metrics after the kill"
            time.sleep(0.5)
    assert 'tweet_worker_deaths_total{cause="SIGKILL"} 1.0' in metrics
    lines = [line for line in log.read_text().splitlines() if "died" in line]
    assert len(lines) == 1 and "[ERROR]" in lines[0] and f"worker pid {worker.pid} died (SIGKILL)" in lines[0]


def _metrics_or_empty(client: httpx.Client) -> str:
    try:
        return client.get("/metrics").text
    except httpx.HTTPError:  # no worker listening yet
        return ""
