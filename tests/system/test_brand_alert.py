"""The bad-buzz alert end to end, every piece real: `bentoml serve` counts brand tweets, Prometheus scrapes it and
evaluates the rules (their windows shortened, generated from the same source as the committed file), Alertmanager
routes the alert to the tests' SMTP server, and the e-mail explains it."""

import re
import threading
import time
from dataclasses import replace

import httpx
import pytest
import yaml

from harness.servers import eventually, free_port, running_program, running_server
from tweet_sentiment.core.config import Settings
from tweet_sentiment.lifecycle import buzz
from tweet_sentiment.training.data import load_airline

RULE = replace(buzz.SurgeRule(), short="20s", baseline="60s", for_="4s")
RATE = 10  # tweets a second


def tweets_answered(url: str, label: str, count: int) -> list[str]:
    """Airline tweets naming @united that the served model answers with ``label``."""
    united = [t for t in load_airline()["text"] if "@united" in t.lower()][:400]
    answers = httpx.post(f"{url}/predict_batch", json={"tweets": united[:256]}, timeout=60).json()
    found = [a for a in answers if a["label"] == label and a["brands"] == ["United"]]
    assert len(found) >= 3, f"the model answers too few @united tweets {label}"
    return [united[answers.index(a)] for a in found][:count]


class Load(threading.Thread):
    """RATE tweets a second naming United, a share of them negative that the test sets as it goes."""

    def __init__(self, url: str, positive: list[str], negative: list[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.positive, self.negative = url, positive, negative
        self.negative_share, self.sent, self.stopped = 0.3, 0, threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stopped.wait(1 / RATE):
                negative = (self.sent % 10) < self.negative_share * 10
                pool = self.negative if negative else self.positive
                client.post(f"{self.url}/predict", json={"tweet": pool[self.sent % len(pool)]}).raise_for_status()
                self.sent += 1


@pytest.mark.slow
def test_a_brand_turning_negative_fires_in_prometheus_and_alertmanager_emails_it(trained, smtp, tmp_path, program):
    prometheus = program("prometheus", "prometheus")
    alertmanager = program("prometheus-alertmanager", "prometheus-alertmanager")
    inbox, mail = smtp
    (tmp_path / "rules.yml").write_text(buzz.to_yaml(buzz.prometheus_rules(RULE)))
    settings = Settings(SMTP_HOST=mail.host, SMTP_PORT=mail.port, ALERT_EMAIL_TO="brands@example.com")
    (tmp_path / "alertmanager.yml").write_text(buzz.to_yaml(buzz.alertmanager_config(settings, group_wait="1s")))
    with running_server(f"model_tag={trained['logreg'].bento_tag}") as url:
        manager_port, prometheus_port = free_port(), free_port()
        prometheus_config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{manager_port}"]}]}]},
            "scrape_configs": [{"job_name": "tweet-sentiment", "static_configs": [{"targets": [url.split("//")[1]]}]}],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config))
        manager_command = [
            alertmanager, f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{manager_port}", "--cluster.listen-address=",
        ]  # fmt: skip
        prometheus_command = [
            prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ]  # fmt: skip
        positive, negative = tweets_answered(url, "positive", 20), tweets_answered(url, "negative", 20)
        manager_url = f"http://127.0.0.1:{manager_port}"
        with (
            running_program(manager_command, manager_url, "/-/ready", 60, {}, tmp_path / "am.log"),
            running_program(prometheus_command, f"http://127.0.0.1:{prometheus_port}", "/-/ready", 60, {}) as prom,
        ):
            load = Load(url, positive, negative)
            load.start()
            try:

                def united_alert(state: str) -> bool:
                    alerts = httpx.get(f"{prom}/api/v1/alerts").json()["data"]["alerts"]
                    return any(a["labels"].get("brand") == "United" and a["state"] == state for a in alerts)

                time.sleep(75)  # a baseline: 30% negative, as long as the baseline window and the short one
                assert not united_alert("firing") and not united_alert("pending")  # a steady brand is quiet
                load.negative_share = 1.0
                assert eventually(lambda: united_alert("firing"), within=60), "no BrandNegativeSurge fired"
                assert eventually(lambda: bool(inbox.messages), within=60), (tmp_path / "am.log").read_text()[-3000:]
            finally:
                load.stopped.set()
                load.join()
    mail_text = inbox.messages[0]
    assert "Subject: [tweet-sentiment] Negative tweets surging for United" in mail_text
    assert "To: brands@example.com" in mail_text
    body = mail_text.replace("=\r\n", "").replace("=3D", "=")  # quoted-printable
    found = re.search(r"United: ([\d.]+)% of (\d+) tweets negative in the last 20s, against ([\d.]+)% of (\d+) in the "
                      r"60s before \(z = ([\d.]+)\)", body)  # fmt: skip
    assert found, body
    share, tweets, baseline, _, z = (float(value) for value in found.groups())
    # What the e-mail says is what fired: the rule's conditions hold on its own figures.
    assert tweets >= RULE.min_tweets and share - baseline >= RULE.min_rise * 100 and z >= RULE.min_z
