"""Batch scoring on a real Spark (local[2]): the server's answers, bad input, and outputs that appear whole.

Behind the ``spark`` marker (`make test-slow` runs it): a JVM and its Python workers start for these tests.
"""

import subprocess
import sys
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from harness.servers import eventually, kill_tree, running_server
from tweet_model import DECISION_CUT
from tweet_sentiment.batch.scoring import (
    INCOMPLETE,
    OUTPUT_FIELDS,
    BatchInputError,
    BatchModel,
    score_archive,
    spark_session,
)
from tweet_sentiment.batch.udfs import BLANK_TEXT, NO_TEXT
from tweet_sentiment.core.config import ROOT, settings
from tweet_sentiment.core.models import ModelNotFound
from tweet_sentiment.serve.schemas import MAX_TWEETS_PER_REQUEST
from tweet_sentiment.training.data import load_airline

FRENCH = "Le vol a été annulé, je suis très mécontent !"
# Spark and the server group tweets differently (partitions; adaptive batches that follow timing), and a model's
# float sums follow the batch's padded shape: a transformer's probabilities move by up to ~1e-5 with it.
BATCH_ROUNDING = 1e-4


@pytest.fixture(scope="module")
def spark():
    with spark_session("local[2]") as session:
        yield session


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """300 airline tweets, a French one, an emoji-only one, and rows with no text, with columns passed through."""
    tweets = [*load_airline()["text"].head(300), FRENCH, "😍😍😍", None, "", " \t\u3000"]
    path = tmp_path_factory.mktemp("archive") / "tweets.parquet"
    pd.DataFrame({"id": range(len(tweets)), "text": tweets, "day": "2026-12-03"}).to_parquet(path)
    return path


def read(output: Path) -> pd.DataFrame:
    return pd.read_parquet(output).sort_values("id").reset_index(drop=True)


@pytest.mark.spark
@pytest.mark.parametrize("family", ["lstm", "logreg", "transformer"])
def test_spark_answers_what_the_server_answers(family, trained, spark, archive, tmp_path, apertium):
    model = trained[family]
    output = tmp_path / "scored"
    summary = score_archive(spark, f"{model.name}@champion", str(archive), str(output), partitions=3)
    rows = read(output)
    assert summary.tweets == len(rows) == len(pd.read_parquet(archive))
    assert len(list(output.glob("part-*.parquet"))) == 3  # written in parallel, a file per partition
    assert list(rows.columns) == ["id", "text", "day", *OUTPUT_FIELDS.fieldNames()]
    assert summary.labels["not scored"] == 3 and sum(summary.labels.values()) == len(rows)
    label = f"{model.name}/{model.version}@champion"
    assert set(rows["model"]) == {label, f"{label}+fr"}  # the French tweet answered by translation
    assert set(rows["model_version"]) == {int(model.version)} and set(rows["day"]) == {"2026-12-03"}

    unscored = rows[rows["reason"].notna()]
    assert list(unscored["reason"]) == [NO_TEXT, BLANK_TEXT, BLANK_TEXT]
    assert unscored["label"].isna().all() and unscored["prob_positive"].isna().all()
    scored = rows[rows["reason"].isna()]
    tweets, served = list(scored["text"]), []
    with running_server(f"model_tag={model.name}@champion") as url:
        for start in range(0, len(tweets), MAX_TWEETS_PER_REQUEST):
            request = {"tweets": tweets[start : start + MAX_TWEETS_PER_REQUEST]}
            served += httpx.post(f"{url}/predict_batch", json=request, timeout=60).raise_for_status().json()
    probs = scored["prob_positive"].to_numpy()
    assert probs.tolist() == pytest.approx([a["prob_positive"] for a in served], abs=BATCH_ROUNDING)
    # Only a tweet within that rounding of the cut may land on the other side of it.
    differ = scored["label"].to_numpy() != np.array([answer["label"] for answer in served])
    assert (np.abs(probs[differ] - DECISION_CUT) < BATCH_ROUNDING).all(), scored[differ]
    assert list(scored["language"].fillna("-")) == [answer["language"] or "-" for answer in served]
    assert list(scored["warning"].fillna("-")) == [answer["warning"] or "-" for answer in served]
    assert list(scored["model"]) == [answer["model"] for answer in served]
    assert [list(named) for named in scored["brands"]] == [answer["brands"] for answer in served]
    assert {brand for named in scored["brands"] for brand in named} >= {"Virgin America"}
    french = scored[scored["text"] == FRENCH].iloc[0]
    assert (french["model"], french["language"]) == (f"{label}+fr", "fr") and pd.isna(french["warning"])


@pytest.mark.spark
def test_bad_input_is_named_and_nothing_is_overwritten_unasked(trained, spark, archive, tmp_path):
    csv = tmp_path / "tweets.csv"
    pd.DataFrame({"body": ['said "no", then\nleft', "great crew"], "n": [1, 2]}).to_csv(csv, index=False)
    with pytest.raises(BatchInputError, match=r"no column 'text'; its columns: body, n\. Name the text column"):
        score_archive(spark, "tweet-lstm@champion", str(csv), str(tmp_path / "out"))
    with pytest.raises(BatchInputError, match="cannot tell the format"):
        score_archive(spark, "tweet-lstm@champion", str(tmp_path), str(tmp_path / "out"))
    with pytest.raises(ModelNotFound, match="has no alias 'nope'"):
        score_archive(spark, "tweet-lstm@nope", str(csv), str(tmp_path / "out"))
    with pytest.raises(BatchInputError, match="exists: pass --overwrite"):  # before the model is even looked up
        score_archive(spark, "tweet-lstm@nope", str(csv), str(tmp_path))
    with pytest.raises(BatchInputError, match="cannot partition by day: not a column"):
        score_archive(spark, "tweet-lstm@champion", str(csv), str(tmp_path / "out"), "body", partition_by=("day",))

    output = tmp_path / "out"
    first = score_archive(spark, "tweet-lstm@champion", str(csv), str(output), text_column="body")
    assert first.tweets == 2
    assert pd.read_parquet(output).sort_values("n")["body"].tolist() == ['said "no", then\nleft', "great crew"]
    with pytest.raises(BatchInputError, match="exists: pass --overwrite"):
        score_archive(spark, "tweet-lstm@champion", str(archive), str(output))
    assert len(pd.read_parquet(output)) == 2  # untouched
    score_archive(spark, "tweet-lstm@champion", str(archive), str(output), overwrite=True, partition_by=("day",))
    assert len(pd.read_parquet(output)) == len(pd.read_parquet(archive))
    assert [folder.name for folder in output.glob("day=*")] == ["day=2026-12-03"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # nothing left beside it


def test_batch_takes_registered_models_only(trained):
    with pytest.raises(ModelNotFound, match="batch scoring takes a registered model"):
        BatchModel.resolve(trained["lstm"].bento_tag)
    model = BatchModel.resolve(f"{trained['lstm'].name}/{trained['lstm'].version}")
    assert model.uri == f"models:/tweet-lstm/{trained['lstm'].version}" and model.alias is None


@pytest.mark.spark
def test_a_job_killed_midway_leaves_no_output_and_the_rerun_writes_it_whole(trained, tmp_path):
    big = tmp_path / "big.parquet"
    pd.DataFrame({"text": load_airline()["text"].head(2_000).tolist() * 25}).to_parquet(big)  # 50,000 tweets
    output = tmp_path / "scored"
    command = [sys.executable, "-m", "batch", "score", "tweet-lstm@champion", "--input", str(big)]
    command += ["--output", str(output), "--master", "local[2]"]
    log = tmp_path / "job.log"
    with log.open("w") as out:
        job = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:  # killed once the write has begun in the staging folder: the tweets are scored as they are written
        writing = eventually(lambda: any(tmp_path.glob(f".scored{INCOMPLETE}*/_temporary")), 240)
    finally:
        kill_tree(job.pid)
    assert writing, log.read_text()[-3000:]
    job.wait()  # (kill_tree has reaped it: its exit status is gone)
    assert "scored " not in log.read_text()  # killed before the end
    assert list(tmp_path.glob(f".scored{INCOMPLETE}*")) and not output.exists()  # stopped midway, nothing whole

    command += ["--log-to-mlflow"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scored 50,000 tweets with tweet-lstm/" in done.stdout and f"output: {output}" in done.stdout
    assert len(pd.read_parquet(output)) == 50_000 and not list(tmp_path.glob(f".scored{INCOMPLETE}*"))
    run_id = done.stdout.split("MLflow run: ")[1].split()[0]
    assert mlflow.get_run(run_id).data.metrics["tweets"] == 50_000

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "exists: pass --overwrite" in again.stderr


@pytest.mark.spark
def test_brands_per_day_of_a_scored_archive_count_its_rows(trained, spark, tmp_path):
    airline = pd.read_csv(settings().data_dir / "airline" / "tweets.csv").sample(1_500, random_state=0)
    archive = tmp_path / "week.parquet"
    week = airline.assign(created_at=pd.to_datetime(airline["tweet_created"], format="%m/%d/%Y %H:%M"))
    week[["tweet_id", "text", "created_at"]].to_parquet(archive)
    score_archive(spark, "tweet-lstm@champion", str(archive), str(tmp_path / "scored"))
    command = [sys.executable, "-m", "batch", "brands", "--input", str(tmp_path / "scored"), "--time-column",
               "created_at", "--output", str(tmp_path / "brands"), "--plot", str(tmp_path / "brands.png"),
               "--master", "local[2]"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    days = pd.read_parquet(tmp_path / "brands")
    assert list(days.columns) == ["brand", "time", "tweets", "negative", "share", "surge"]
    scored = pd.read_parquet(tmp_path / "scored").explode("brands").dropna(subset=["brands"])
    expected = scored.groupby([scored["brands"], scored["created_at"].dt.floor("D")]).size()
    counted = days[days["tweets"] > 0].set_index(["brand", "time"])["tweets"]
    assert counted.sort_index().tolist() == expected.sort_index().tolist() and len(counted) > 20
    assert (tmp_path / "brands.png").stat().st_size > 10_000 and "United" in done.stdout
