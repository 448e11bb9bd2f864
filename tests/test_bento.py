"""`bentoml build`: what the Bento holds, its Dockerfile, and the exported Bento served like a container."""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import bentoml
import httpx
import pytest
import yaml

from benchmarks.servers import running_server
from tweet_sentiment.config import ROOT


def build(*args: str) -> bentoml.Bento:
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-o", "tag", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    tag = result.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    return bentoml.get(tag)


@pytest.fixture(scope="module")
def bento(trained) -> bentoml.Bento:
    return build()


def test_bento_packs_the_service_package_and_exactly_the_champion(bento, trained):
    info = yaml.safe_load(Path(bento.path_of("bento.yaml")).read_text())
    assert info["services"][0]["name"] == "TweetSentiment"
    assert [m["tag"] for m in info["services"][0]["models"]] == [trained["lstm"].bento_tag]
    assert info["args"] == {"model_tag": "tweet-lstm@champion"}
    root = Path(bento.path_of("src"))
    src = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert {"service.py", "tweet_sentiment/predict.py", "tweet_sentiment/registry.py"} <= src
    assert not any("__pycache__" in p or p.startswith(("tests/", "train/")) for p in src)


def test_bento_pins_requirements_and_the_cpu_torch_index(bento):
    requirements = Path(bento.path_of("env/python/requirements.txt")).read_text()
    for pin in ("bentoml==1.4.40", "torch==2.13.0", "tensorflow-cpu==", "keras==", "mlflow=="):
        assert pin in requirements
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements


def test_dockerfile_installs_requirements_and_starts_the_server(bento):
    dockerfile = Path(bento.path_of("env/docker/Dockerfile")).read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "ENV UV_INDEX_STRATEGY=$UV_INDEX_STRATEGY" in dockerfile
    assert "pip install -r $BENTO_PATH/env/python/requirements.txt" in dockerfile
    assert "EXPOSE 3000" in dockerfile
    assert 'ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]' in dockerfile


def test_build_by_tag_packs_that_model(trained):
    logreg = build("--arg", f"model_tag={trained['logreg'].bento_tag}")
    assert [str(m.tag) for m in logreg.info.services[0].models] == [trained["logreg"].bento_tag]


def test_exported_bento_serves_its_champion_from_an_empty_store_without_mlflow(bento, trained, tmp_path):
    """What `bentoml containerize` does, minus Docker: the Bento with its models, no store or registry around it."""
    archive = bento.export(str(tmp_path / "bento.bento"))
    folder = tmp_path / "bento"
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    env = {
        **os.environ,
        "BENTOML_HOME": str(tmp_path / "empty-home"),
        "BENTOML_CONTAINERIZED": "true",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",  # nothing listens there: the Bento must not need MLflow
    }
    with running_server(target=str(folder), env=env) as url:
        response = httpx.post(f"{url}/predict", json={"tweet": "great flight, thanks!"})
        assert response.status_code == 200
        assert response.json()["model"] == trained["lstm"].label("champion")
        home = httpx.get(f"{url}/").text
        assert f"version <b>{trained['lstm'].version}</b>" in home and "champion" in home
        assert "id='model-lifecycle'" in httpx.get(f"{url}/readme").text  # README.md is packed
