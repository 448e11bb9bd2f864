"""The bad-buzz rule with the real tools: promtool runs the committed rules on simulated brands, amtool checks the
Alertmanager configuration, and the committed rules are what the generator writes."""

import subprocess

import numpy as np
import pytest
import yaml

from tweet_sentiment.core.config import ROOT, Settings
from tweet_sentiment.lifecycle import buzz

RULES = ROOT / "prometheus" / "brand_rules.yml"
# The series are sampled every 15 minutes (promtool keeps a query under 50,000 samples; a week of minutes is not),
# two samples a short window: each rate below is tweets a step.
STEP = 15
WEEK = 7 * 24 * 60 // STEP  # steps: the default baseline
SURGE_START, SURGE_STEPS = WEEK + 2, 3


def brand(name: str, segments: list[tuple[int, float, float]]) -> list[dict]:
    """The two series of a brand, in promtool's expanding notation, from (steps, positive a step, negative a step)
    segments: each counter grows by its rate a step, from 0."""
    series = []
    for i, label in enumerate(("positive", "negative")):
        last, parts = None, []
        for steps, *rates in segments:  # a segment's first sample is one step after the last one's
            first = 0.0 if last is None else last + rates[i]
            parts.append(f"{first:g}+{rates[i]:g}x{steps}")
            last = first + rates[i] * steps
        labels = f'brand="{name}",label="{label}",instance="a",job="tweets"'
        series.append({"series": f"tweet_brand_predictions_total{{{labels}}}", "values": " ".join(parts)})
    return series


def steady(positive: float, negative: float) -> list[tuple[int, float, float]]:
    return [(SURGE_START + 20, positive, negative)]


def surging(before: tuple[float, float], during: tuple[float, float]) -> list[tuple[int, float, float]]:
    return [(SURGE_START, *before), (SURGE_STEPS - 1, *during), (20, *before)]


def at(step: int) -> str:
    return f"{step * STEP}m"


def firing_description(before: tuple[float, float], during: tuple[float, float]) -> str:
    """What the e-mail says two steps into the surge: the short window (30 minutes) holds those two steps."""
    rule = buzz.SurgeRule()
    tweets, share = 2 * sum(during), during[1] / sum(during)
    base_tweets, base_share = WEEK * sum(before), before[1] / sum(before)
    z = rule.z(share * tweets, tweets, base_share * base_tweets, base_tweets)
    return (
        f"Acme: {share * 100:.4g}% of {tweets:.0f} tweets negative in the last 30m, against {base_share * 100:.4g}% "
        f"of {base_tweets:.0f} in the 7d before (z = {z:.1f}). The alert needs {rule.explained()}."
    )


def test_the_committed_rules_are_the_generated_ones():
    assert RULES.read_text() == buzz.to_yaml(buzz.prometheus_rules())


def test_a_surge_fires_and_resolves_and_steady_quiet_small_and_wobbling_brands_never_page(tmp_path, program):
    promtool = program("promtool", "prometheus")
    series = [
        *brand("Acme", surging(before=(90, 60), during=(60, 300))),  # 40% negative, then 83% for 45 minutes
        *brand("Airline", steady(45, 105)),  # always 70% negative
        *brand("Quiet", steady(0, 0)),
        *brand("Small", surging(before=(4, 1), during=(0, 8))),  # 16 tweets in the short window, all negative
        *brand("Big", surging(before=(1050, 450), during=(960, 540))),  # +6 points on 3,000 tweets: significant
    ]
    firing = {
        "exp_labels": {"severity": "warning", "brand": "Acme"},
        "exp_annotations": {
            "summary": "Negative tweets surging for Acme",
            "description": firing_description((90, 60), (60, 300)),
        },
    }
    expected = {
        SURGE_START - 4: [],
        SURGE_START: [],
        SURGE_START + 1: [],  # pending: within `for`
        SURGE_START + 2: [firing],
        SURGE_START + SURGE_STEPS + 2: [],  # resolved once the short window has left the surge
    }
    alert_tests = [
        {"eval_time": at(step), "alertname": buzz.ALERT, "exp_alerts": alerts} for step, alerts in expected.items()
    ]
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": f"{STEP}m",
        "tests": [{"interval": f"{STEP}m", "input_series": series, "alert_rule_test": alert_tests}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False, width=1000))
    result = subprocess.run([promtool, "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_statistic_in_python_is_the_rules():
    rule = buzz.SurgeRule()
    # 520 of 650 negative against 40% of 100,800: z as the recording rule computes it (checked by promtool above)
    assert rule.z(520, 650, 40_320, 100_800) == pytest.approx((0.8 - 0.4) / np.sqrt(0.4 * 0.6 / 650))
    assert rule.fires(520, 650, 40_320, 100_800)
    assert not rule.fires(5, 5, 20, 100)  # five tweets never page
    assert not rule.fires(1080, 3000, 30_000, 100_000)  # +6 points: significant, too small to matter
    assert not rule.fires(0, 0, 0, 0)  # quiet
    assert rule.z(40, 40, 0, 500) == pytest.approx((1 - 0.02) / np.sqrt(0.02 * 0.98 / 40))  # baseline clamped


def test_alertmanager_routes_the_alert_to_the_services_smtp_settings(tmp_path, program):
    amtool = program("amtool", "prometheus-alertmanager")
    config = Settings(
        SMTP_HOST="smtp.example.com", SMTP_PORT=587, SMTP_USER="alerts", SMTP_PASSWORD="never-written",
        SMTP_STARTTLS=True, ALERT_EMAIL_TO="brands@example.com", ALERT_EMAIL_FROM="tweets@example.com",
    )  # fmt: skip
    (tmp_path / "password").write_text("never-written")
    written = buzz.to_yaml(buzz.alertmanager_config(config, tmp_path / "password"))
    assert "never-written" not in written
    document = yaml.safe_load(written)
    assert document["global"]["smtp_smarthost"] == "smtp.example.com:587" and document["global"]["smtp_require_tls"]
    assert document["receivers"][0]["email_configs"][0]["to"] == "brands@example.com"
    (tmp_path / "alertmanager.yml").write_text(written)
    result = subprocess.run(
        [amtool, "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with pytest.raises(ValueError, match="SMTP_HOST"):
        buzz.alertmanager_config(Settings(SMTP_HOST=None))
