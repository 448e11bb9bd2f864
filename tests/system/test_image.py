"""The image users deploy, built from a tiny model's Bento and run with a volume, as a platform team checks it.

Slow: it needs a Docker engine (.ci/run installs Debian's docker.io and debootstrap; a private dockerd is
started with its state in a temporary folder) and builds an image, ~5 min.
"""

import json
import os
import re
import socket
import time
import uuid

import httpx
import pytest

from harness.containers import (
    STATE,
    build,
    containerize,
    docker,
    docker_engine,
    ensure_base_image,
    pins,
    running_container,
    worker_rss_mib,
)
from tweet_sentiment.core.config import ROOT

pytestmark = pytest.mark.slow
READY_WITHIN_S = 60  # generous for a loaded CI machine; the image figures give the real time


@pytest.fixture(scope="module")
def engine():
    try:
        with docker_engine() as env:
            yield env
    except RuntimeError as error:
        pytest.fail(str(error)) if os.environ.get("CI") else pytest.skip(str(error))


@pytest.fixture(scope="module")
def image(engine, request):
    """TWEETS_IMAGE, an image built beforehand (the GitHub workflow's, pushed only if this passes), or the
    image of the session's tiny LSTM champion, built now."""
    if built := os.environ.get("TWEETS_IMAGE"):
        return built
    request.getfixturevalue("trained")
    ensure_base_image(engine)
    return containerize(str(build().tag), f"tweet-sentiment:test-{uuid.uuid4().hex[:8]}", engine)


@pytest.fixture
def volume(engine):
    name = f"tweet-state-{uuid.uuid4().hex[:8]}"
    docker(engine, "volume", "create", name)
    yield name
    docker(engine, "volume", "rm", "-f", name, check=False)


def test_image_runs_as_non_root_with_a_healthcheck_and_a_state_volume(engine, image):
    config = json.loads(docker(engine, "image", "inspect", image))[0]["Config"]
    assert config["User"] == "bentoml"
    # Labelled with what it packs: the registered version, and the MLflow run that trained it.
    labels = config["Labels"]
    assert re.fullmatch(r"tweet-lstm/\d+", labels["tweet-sentiment.model"]), labels
    assert re.fullmatch(r"[0-9a-f]{32}", labels["tweet-sentiment.mlflow-run-id"]), labels
    assert "/readyz" in " ".join(config["Healthcheck"]["Test"])
    assert STATE in config["Volumes"]
    assert config["Env"] and f"TWEETS_STATE_DIR={STATE}" in config["Env"]
    packages = docker(engine, "run", "--rm", "--entrypoint", "uv", image, "pip", "list")
    assert "onnxruntime" in packages and not any(f in packages for f in ("tensorflow", "torch ", "transformers"))
    # Installed from the locks: a rebuild next month installs the same versions.
    listed = json.loads(docker(engine, "run", "--rm", "--entrypoint", "uv", image, "pip", "list", "--format", "json"))
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in listed}
    locked = pins(ROOT / "requirements-serve.lock") | pins(ROOT / "requirements-runtimes.lock")
    assert {name: v for name, v in installed.items() if name in locked and locked[name] != v} == {}
    assert {"bentoml", "uvicorn", "starlette", "onnxruntime"} <= installed.keys() & locked.keys()


FRENCH = "Le vol a été annulé, je suis très mécontent !"


def half_sent_predict_batch(url: str) -> tuple[socket.socket, bytes]:
    """A /predict_batch request whose headers and first half of body are sent; returns the socket and the rest."""
    body = json.dumps({"tweets": ["a tweet"] * 256}).encode()
    host, port = httpx.URL(url).host, httpx.URL(url).port
    head = f"POST /predict_batch HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    connection = socket.create_connection((host, port), timeout=60)
    connection.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
    return connection, body[len(body) // 2 :]


def finish(request: tuple[socket.socket, bytes]) -> int:
    """Send the rest of the body; the response's status code."""
    connection, rest = request
    with connection:
        connection.sendall(rest)
        status_line = connection.makefile("rb").readline().decode()
    return int(status_line.split()[1]) if status_line else 0


def wait_for_in_progress(url: str, route: str, count: int, timeout: float = 30) -> None:
    """Until the server's own gauge counts ``count`` requests in progress on ``route``: they reached it."""
    deadline = time.monotonic() + timeout
    pattern = re.compile(rf'request_in_progress\{{[^}}]*endpoint="{re.escape(route)}"[^}}]*\}} (\S+)')
    while (found := pattern.findall(httpx.get(f"{url}/metrics").text)) and sum(map(float, found)) < count:
        assert time.monotonic() < deadline, f"{count} requests on {route} never in progress together"
        time.sleep(0.1)
    assert found, f"no request_in_progress gauge for {route}"


def test_image_serves_keeps_feedback_across_containers_and_drains_on_sigterm(engine, image, volume):
    name = f"tweet-sentiment-{uuid.uuid4().hex[:8]}"
    # The tiny model's French accuracy is no real one: the container answers French tweets by translation whatever
    # it is, with the Apertium the image installs.
    any_french = ("--env", "TWEETS_FRENCH_MIN_ACCURACY=0")
    with running_container(image, engine, volume, name, READY_WITHIN_S, any_french) as (url, _):
        # Not root: the uid deploy/bento.Dockerfile.j2 sets, the one deploy/kubernetes.yaml runs as.
        template = (ROOT / "deploy" / "bento.Dockerfile.j2").read_text()
        assert docker(engine, "exec", name, "id", "-u") == re.search(r"bento__uid_gid = (\d+)", template)[1]
        [worker] = worker_rss_mib(engine, name)  # one worker (the default), what benchmarks.image measures
        assert 50 < worker < 1024
        answer = httpx.post(f"{url}/predict", json={"tweet": "great flight, thanks!"}).json()
        assert answer["model"].startswith("tweet-lstm/") and answer["model"].endswith("@champion")
        assert answer["label"] in ("positive", "negative")
        batch = httpx.post(f"{url}/predict_batch", json={"tweets": ["love it", "hate it"]}).json()
        assert len(batch) == 2
        french = httpx.post(f"{url}/predict", json={"tweet": FRENCH}).json()
        assert french["model"].endswith("@champion+fr") and french["label"] == "negative" and french["warning"] is None
        assert httpx.post(f"{url}/status", json={}).json()["family"] == "lstm"
        assert "tweet_predictions_total" in httpx.get(f"{url}/metrics").text
        feedback = {"tweet": "great flight, thanks!", "predicted_label": "positive", "true_label": "negative"}
        assert httpx.post(f"{url}/feedback", json=feedback).json()["wrong_in_window"] == 1

        # SIGTERM while 16 requests are in the server (headers read, body half sent): every one is answered.
        held = [half_sent_predict_batch(url) for _ in range(16)]
        wait_for_in_progress(url, "/predict_batch", 16)
        docker(engine, "kill", "--signal", "TERM", name)
        assert [finish(request) for request in held] == [200] * 16
        docker(engine, "wait", name, timeout=60)
        assert docker(engine, "inspect", "-f", "{{.State.ExitCode}}", name) == "0"

    # A new container on the same volume has the feedback the removed one stored. It runs as Kubernetes runs it
    # (deploy/kubernetes.yaml): read-only root filesystem, writable /tmp and state volume, no capabilities.
    kubernetes_like = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")
    with running_container(image, engine, volume, name, READY_WITHIN_S, kubernetes_like) as (url, _):
        assert httpx.post(f"{url}/status", json={}).json()["wrong_in_window"] == 1
        assert httpx.post(f"{url}/predict", json={"tweet": "lovely crew"}).status_code == 200
        feedback = {"tweet": "lovely crew", "predicted_label": "negative", "true_label": "positive"}
        assert httpx.post(f"{url}/feedback", json=feedback).json()["wrong_in_window"] == 2
