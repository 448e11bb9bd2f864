"""`bentoml build`: what the Bento holds, its Dockerfile, and the exported Bento served like a container."""

import os
import tarfile
from pathlib import Path

import bentoml
import httpx
import pytest
import yaml

from harness.containers import build
from harness.servers import running_server
from tweet_sentiment.core.config import ROOT, settings


@pytest.fixture(scope="module")
def bento(trained) -> bentoml.Bento:
    return build()


TRAINING_FRAMEWORKS = ("tensorflow", "keras", "torch", "transformers")


def test_bento_packs_the_serving_code_and_exactly_the_champion(bento, trained):
    text = Path(bento.path_of("bento.yaml")).read_text()
    info = yaml.safe_load(text)
    assert info["services"][0]["name"] == "TweetSentiment"
    assert [m["tag"] for m in info["services"][0]["models"]] == [trained["lstm"].bento_tag]
    assert info["args"] == {"model_tag": "tweet-lstm@champion"}
    assert str(ROOT) not in text and str(settings().state_dir) not in text  # no path of the build machine
    root = Path(bento.path_of("src"))
    src = {p.relative_to(root).as_posix() for p in root.rglob("*.py")}
    shipped = {
        path.relative_to(ROOT).as_posix()
        for folder in ("tweet_model", "tweet_sentiment/core", "tweet_sentiment/serve")
        for path in (ROOT / folder).glob("*.py")
    }
    assert src == {"service.py", "tweet_sentiment/__init__.py", *shipped}  # nothing else: no training, lifecycle, tests


def test_the_image_is_labelled_with_the_version_the_bento_packs_and_its_run(bento, trained):
    from tweet_sentiment.core.models import image_labels

    lstm = trained["lstm"]
    labels = image_labels(str(bento.tag))
    assert labels["tweet-sentiment.model"] == f"tweet-lstm/{lstm.version}"
    assert labels["tweet-sentiment.mlflow-run-id"] == bentoml.models.get(lstm.bento_tag).info.labels["mlflow_run_id"]


def test_bento_installs_the_service_and_its_model_without_training_frameworks_or_extra_index(bento, tmp_path):
    requirements = Path(bento.path_of("env/python/requirements.txt")).read_text()
    assert "bentoml==1.4.40" in requirements and "mlflow-skinny==" in requirements
    assert not any(f"\n{name}" in requirements for name in TRAINING_FRAMEWORKS)
    assert "index-url" not in requirements  # packages come from wherever the build machine's pip points
    with tarfile.open(bento.export(str(tmp_path / "bento.bento"))) as tar:
        [model_requirements] = [m for m in tar.getnames() if m.endswith("mlflow_model/requirements.txt")]
        packed = tar.extractfile(model_requirements).read().decode()
    assert "onnxruntime==" in packed and not any(f"{name}==" in packed for name in TRAINING_FRAMEWORKS)


def test_dockerfile_has_one_apt_layer_for_apertium_a_state_volume_and_a_healthcheck(bento):
    dockerfile = Path(bento.path_of("env/docker/Dockerfile")).read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert dockerfile.count("apt-get install") == 1  # one apt layer: Apertium, which translates French tweets
    assert "apertium apertium-fr-es apertium-eng-spa" in dockerfile and "rm -rf /var/lib/apt/lists" in dockerfile
    assert "UV_INDEX_STRATEGY" not in dockerfile
    runtimes = "uv pip install --no-cache -r models/*/*/mlflow_model/requirements.txt -c src/requirements-runtimes.lock"
    assert runtimes in dockerfile
    assert "ENV TWEETS_STATE_DIR=/home/bentoml/state" in dockerfile
    assert 'VOLUME ["/home/bentoml/state"]' in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile
    assert "USER bentoml" in dockerfile and "EXPOSE 3000" in dockerfile
    assert 'ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]' in dockerfile


def test_build_by_tag_packs_that_model_and_those_a_request_may_name(trained):
    logreg, transformer = trained["logreg"].bento_tag, trained["transformer"].bento_tag
    built = build("--arg", f"model_tag={logreg}", "--arg", f"models={transformer}")
    assert [str(m.tag) for m in built.info.services[0].models] == [logreg, transformer]


def test_exported_bento_serves_its_champion_from_an_empty_store_without_mlflow(bento, trained, tmp_path):
    """What `bentoml containerize` does, minus Docker: the Bento with its models, no store or registry around it."""
    archive = bento.export(str(tmp_path / "bento.bento"))
    folder = tmp_path / "bento"
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    state = tmp_path / "state"  # what the image's volume holds
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("TWEETS_MONITOR_DIR", "TWEETS_FEEDBACK_DB")},
        "BENTOML_HOME": str(tmp_path / "empty-home"),
        "BENTOML_CONTAINERIZED": "true",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",  # nothing listens there: the Bento must not need MLflow
        "TWEETS_STATE_DIR": str(state),
    }
    log = tmp_path / "server.log"
    with running_server(target=str(folder), env=env, log=log) as url:
        response = httpx.post(f"{url}/predict", json={"tweet": "great flight, thanks!"})
        assert response.status_code == 200
        assert response.json()["model"] == trained["lstm"].label("champion")
        assert httpx.post(f"{url}/predict", json={"tweet": "   "}).status_code == 400
        feedback = {"tweet": "great flight, thanks!", "predicted_label": "positive", "wrong": True}
        assert httpx.post(f"{url}/feedback", json=feedback).status_code == 200
        home = httpx.get(f"{url}/").text
        assert f"version <b>{trained['lstm'].version}</b>" in home and "champion" in home
        assert "id='model-lifecycle'" in httpx.get(f"{url}/readme").text  # README.md is packed
    # Everything the service keeps is in its state folder, nothing in the Bento's src/.
    assert (state / "feedback.db").is_file() and list((state / "monitoring").rglob("data.*.log"))
    assert not [p for p in folder.rglob("*") if p.name.startswith(("feedback.db", "data.")) or p.name == "monitoring"]
    # A client's error is one line: route, status, reason; no traceback.
    lines = [line for line in log.read_text().splitlines() if "/predict" in line and "400" in line]
    assert len(lines) == 1 and "client error on /predict [POST]: 400" in lines[0], lines
    assert "Traceback" not in log.read_text()
