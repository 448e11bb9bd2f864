"""The drift report: found where it was injected, not elsewhere; bad logs are clear; the CLI end to end."""

import json
import tempfile
from datetime import datetime, timedelta

import mlflow
import numpy as np
import pandas as pd
import pytest

import drift_report
from tweet_sentiment.core.prediction_log import PredictionLogError, read_prediction_log
from tweet_sentiment.lifecycle import drift
from tweet_sentiment.lifecycle import tracking as runs

WORDS = [
    "flight",
    "crew",
    "delay",
    "bag",
    "seat",
    "gate",
    "late",
    "great",
    "thanks",
    "service",
    "time",
    "plane",
    "help",
]


def tweets(rng: np.random.Generator, n: int, words: list[str] = WORDS, length: tuple[int, int] = (4, 12)) -> list[str]:
    return ["@united " + " ".join(rng.choice(words, rng.integers(*length))) for _ in range(n)]


@pytest.fixture
def reference() -> drift.Reference:
    rng = np.random.default_rng(0)
    return drift.Reference("tweet-lstm/1", tweets(rng, 1_000), rng.beta(1, 3, 1_000), frozenset([*WORDS, "<user>"]))


def served(texts: list[str], probs: np.ndarray, model: str = "tweet-lstm/1") -> pd.DataFrame:
    start = datetime(2026, 11, 1)
    return pd.DataFrame(
        {
            "tweet": texts,
            "prob_positive": probs,
            "model": model,
            "timestamp": [start + timedelta(seconds=i) for i in range(len(texts))],
        }
    )


def verdicts(report: drift.DriftReport) -> dict[str, str]:
    return {f.name: f.verdict for f in report.features}


def test_same_distribution_is_stable_everywhere(reference):
    rng = np.random.default_rng(1)
    report = drift.compare(reference, served(tweets(rng, 500), rng.beta(1, 3, 500)))
    assert set(verdicts(report).values()) == {"stable"} and not report.drift
    assert report.top_new_tokens == []


def test_shifted_predictions_drift_and_the_text_features_do_not(reference):
    rng = np.random.default_rng(2)
    report = drift.compare(reference, served(tweets(rng, 500), rng.beta(3, 1, 500)))
    assert verdicts(report) == {
        "predicted_positive": "drift",
        "prob_positive": "drift",
        "tweet_length": "stable",
        "unknown_token_share": "stable",
    }


def test_new_words_and_longer_tweets_drift_and_the_predictions_do_not(reference):
    rng = np.random.default_rng(3)
    texts = tweets(rng, 500, [*WORDS, "vaccine", "lockdown", "zoom"], length=(15, 30))
    report = drift.compare(reference, served(texts, rng.beta(1, 3, 500)))
    assert verdicts(report) == {
        "predicted_positive": "stable",
        "prob_positive": "stable",
        "tweet_length": "drift",
        "unknown_token_share": "drift",
    }
    assert {token for token, _ in report.top_new_tokens} == {"vaccine", "lockdown", "zoom"}


def test_too_small_a_window_says_so(reference):
    with pytest.raises(drift.DriftError, match="only 10 served predictions"):
        drift.compare(reference, served(["@united ok"] * 10, np.full(10, 0.5)))


def write_log(folder, rows: pd.DataFrame, name: str = "data.0.log", per_call: int = 4) -> None:
    """The service's log: a record per model call of ``per_call`` tweets (0: a record per tweet, as it once was)."""
    folder.mkdir(parents=True, exist_ok=True)
    if per_call:
        calls = [rows.iloc[start : start + per_call] for start in range(0, len(rows), per_call)]
        records = [
            {
                "tweets": call["tweet"].tolist(),
                "probs_positive": call["prob_positive"].tolist(),
                "model": call["model"].iloc[0],
                "timestamp": call["timestamp"].iloc[0].isoformat(),
            }
            for call in calls
        ]
    else:
        records = [{**row, "timestamp": row["timestamp"].isoformat()} for row in rows.to_dict("records")]
    (folder / name).write_text("\n".join(map(json.dumps, records)) + "\n")


def test_log_reading_skips_corrupted_lines_and_filters_model_and_time(tmp_path):
    rng = np.random.default_rng(4)
    # A rotated file written a record per tweet (the service's older log), then a record per model call.
    write_log(tmp_path, served(tweets(rng, 60), rng.random(60)), "data.0.log.2026-10-31", per_call=0)
    later = served(tweets(rng, 5), rng.random(5), model="tweet-logreg/2")
    write_log(tmp_path, later.assign(timestamp=later["timestamp"] + timedelta(hours=1)), "data.1.log")
    with (tmp_path / "data.1.log").open("a") as file:
        file.write('{"tweet": "cut in the midd\n{"tweet": "x", "prob_positive": "high", "timestamp": "2026"}\n')
        file.write('{"tweets": ["a", "b"], "probs_positive": [0.5], "timestamp": "2026-11-01"}\n')
    log = read_prediction_log(tmp_path)
    assert (log.files, len(log.rows), len(log.bad_lines)) == (2, 65, 3)
    assert log.bad_lines[0].startswith("data.1.log:3: JSONDecodeError")
    assert log.bad_lines[2].startswith("data.1.log:5: ValueError: tweets, probs_positive, ids and challenger")
    rows, model = drift.window(log, None, None)
    assert model == "tweet-logreg/2" and len(rows) == 5  # the last to answer
    rows, _ = drift.window(log, "tweet-lstm/1", datetime(2026, 11, 1, 0, 0, 30))
    assert len(rows) == 30
    with pytest.raises(drift.DriftError, match="no prediction of 'tweet-x/1' in the log; it has"):
        drift.window(log, "tweet-x/1", None)


def test_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(PredictionLogError, match="no prediction log in"):
        read_prediction_log(tmp_path / "nothing")


def test_cli_reports_against_the_served_models_training_run_and_logs_to_mlflow(trained, tmp_path, capsys):
    rng = np.random.default_rng(5)
    label = trained["lstm"].label("champion")
    texts = tweets(rng, 80, ["covid", "vaccine", "zoom", "lockdown"], length=(20, 30))
    write_log(tmp_path / "log", served(texts, rng.random(80), model=label))
    report = drift_report.main(["--log-dir", str(tmp_path / "log"), "--out", str(tmp_path / "out"), "--log-mlflow"])
    assert (report.model, report.rows) == (label, 80)
    assert report.reference_rows == len(runs.test_predictions(trained["lstm"].run_id))
    summary = json.loads((tmp_path / "out" / "drift_summary.json").read_text())
    assert summary["features"]["unknown_token_share"]["verdict"] == "drift"  # words the airline data never had
    assert "vaccine" in [t["token"] for t in summary["top_new_tokens"]]
    page = (tmp_path / "out" / "drift_report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "Drift found" in page
    run_id = capsys.readouterr().out.split("logged to MLflow run ")[1].strip()
    run = mlflow.get_run(run_id)
    assert run.data.tags["drift"] == "true" and "psi_unknown_token_share" in run.data.metrics


def test_reading_the_reference_leaves_no_download_behind(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where MLflow's downloads go
    reference = drift.load_reference(trained["lstm"].label("champion"))
    assert "flight" in reference.vocabulary  # the training vocabulary was read
    assert list(tmp_path.iterdir()) == []
