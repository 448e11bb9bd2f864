"""Batch scoring on Spark against the model alone and the server: writes benchmarks/results/BATCH.md.

    python -m benchmarks.batch                      # 1,000,000 tweets for the LSTM and the logistic regression
    python -m benchmarks.batch --tweets 20000 --rounds 1      # a quick run

For each model: the Spark job (`score_archive`, what `python -m batch score` runs) on ``local[2]``; the
model alone, its pyfunc's predict over the same tweets in as many processes as Spark has cores; and the
server (`bentoml serve`, one worker) under locust with 32 and 256 tweets a request. Sentiment140's sample,
repeated, is the archive.
"""

import argparse
import multiprocessing
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
import psutil

from benchmarks.run import RESULTS, Target, run_locust
from harness.servers import leaves_no_process, running_server
from tweet_sentiment.batch.scoring import BatchModel, score_archive, spark_session
from tweet_sentiment.core.models import ModelNotFound
from tweet_sentiment.lifecycle.figures import stamped
from tweet_sentiment.lifecycle.tracking import setup_mlflow
from tweet_sentiment.training.data import load_sentiment140

CORES = 2  # local[2]: the machine's two cores
CHUNK = 10_000  # tweets a model call in both: Spark's Arrow batch (spark.sql.execution.arrow.maxRecordsPerBatch)
SERVER_LOADS = (("ManyTweets", 32), ("MaxTweets", 256))  # (locust user, tweets a request), 8 users each
SERVER_USERS, SERVER_SECONDS = 8, 20


@dataclass
class Measured:
    """Each way's tweets/s, one figure per round."""

    model: str  # spec, e.g. tweet-lstm@champion
    version: str  # tweet-lstm/3@champion
    tweets: int
    spark: list[float] = field(default_factory=list)
    alone: list[float] = field(default_factory=list)
    server: dict[int, list[float]] = field(default_factory=dict)  # tweets a request -> tweets/s answered
    server_failures: int = 0
    peak_mb: dict[str, float] = field(default_factory=dict)  # the highest of the rounds' Spark jobs

    @staticmethod
    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    @staticmethod
    def cell(values: list[float]) -> str:
        """The mean, and the range where the rounds differ."""
        spread = f" ({min(values):,.0f}-{max(values):,.0f})" if len(values) > 1 else ""
        return f"{Measured.mean(values):,.0f}{spread}"


class PeakMemory:
    """The peak resident memory of this process, its JVM and the JVM's Python workers, sampled every 0.2 s."""

    def __init__(self) -> None:
        self.peak = {"driver (Python)": 0.0, "JVM (driver and executor)": 0.0, "executors' Python workers": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.2):
            try:
                driver = me.memory_info().rss
                jvms = [p for p in me.children() if "java" in p.name()]
                jvm = sum(p.memory_info().rss for p in jvms)
                workers = sum(c.memory_info().rss for p in jvms for c in p.children(recursive=True))
            except psutil.Error:  # a worker ended while being read
                continue
            for key, value in zip(self.peak, (driver, jvm, workers), strict=True):
                self.peak[key] = max(self.peak[key], value / 2**20)


def archive(tweets: int, folder: Path) -> tuple[Path, list[str]]:
    """Sentiment140's sample repeated to ``tweets`` rows, with an id, as Parquet; and its texts."""
    sample = load_sentiment140()["text"].tolist()
    texts = [sample[i % len(sample)] for i in range(tweets)]
    path = folder / f"tweets-{tweets}.parquet"
    pd.DataFrame({"id": range(tweets), "text": texts}).to_parquet(path, row_group_size=100_000)
    return path, texts


def _predict_share(uri: str, tweets: list[str], results: "multiprocessing.Queue") -> None:
    os.environ["OMP_NUM_THREADS"] = "1"  # as each Spark task's runtime: read when the ONNX session is created
    model = mlflow.pyfunc.load_model(uri)
    model.predict(tweets[:8])
    start = time.perf_counter()
    for i in range(0, len(tweets), CHUNK):
        model.predict(tweets[i : i + CHUNK])
    results.put(time.perf_counter() - start)


def model_alone(uri: str, tweets: list[str]) -> float:
    """Tweets/s of the pyfunc's predict over ``tweets``, split across CORES processes (loading excluded)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    shares = [tweets[i::CORES] for i in range(CORES)]
    processes = [context.Process(target=_predict_share, args=(uri, share, results)) for share in shares]
    for process in processes:
        process.start()
    seconds = max(results.get(timeout=3600) for _ in processes)
    for process in processes:
        process.join()
    return len(tweets) / seconds


def server_rates(spec: str, result: "Measured") -> None:
    """Tweets/s answered by one `bentoml serve` worker under locust, per request size."""
    with tempfile.TemporaryDirectory() as raw, running_server(f"model_tag={spec}") as url:
        for user, size in SERVER_LOADS:
            stats = run_locust(url, user, SERVER_USERS, SERVER_SECONDS, Path(raw) / user)
            result.server.setdefault(size, []).append(stats["rps"] * size)  # rps: requests answered a second
            result.server_failures += stats["failures"]


def measure(spec: str, tweets: int, folder: Path, rounds: int) -> Measured:
    """Spark, the model alone and the server, in alternated order round after round (the machine's speed
    drifts over minutes: one run of each would compare different machines)."""
    model = BatchModel.resolve(spec)
    path, texts = archive(tweets, folder)
    result = Measured(spec, model.label, tweets)

    def spark() -> None:
        with PeakMemory() as memory, spark_session(f"local[{CORES}]") as session:
            summary = score_archive(session, spec, str(path), str(folder / "scored"), overwrite=True)
        result.spark.append(summary.tweets_per_second)
        result.peak_mb = {key: max(mb, result.peak_mb.get(key, 0)) for key, mb in memory.peak.items()}

    ways = [spark, lambda: result.alone.append(model_alone(model.uri, texts)), lambda: server_rates(spec, result)]
    for round_ in range(rounds):
        for way in ways if round_ % 2 == 0 else ways[::-1]:
            way()
        print(f"== {model.label}, round {round_ + 1}: spark {result.spark}, alone {result.alone}, "
              f"server {result.server}", flush=True)  # fmt: skip
    return result


def targets(lstm: Measured) -> list[Target]:
    return [
        Target(
            "LSTM on Spark / the model alone, same cores (≥ 0.7)",
            lambda: lstm.mean(lstm.spark) / lstm.mean(lstm.alone),
            lambda ratio: ratio >= 0.7,
        ),
    ]


def report(results: list[Measured], out: Path) -> Path:
    rows = [
        "| model | tweets | Spark, local[2] | model alone, 2 processes | Spark / alone | server, 32 a request "
        "| server, 256 a request | Spark / server (32) | failed requests |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r.version} | {r.tweets:,} | {r.cell(r.spark)} | {r.cell(r.alone)} "
            f"| {r.mean(r.spark) / r.mean(r.alone):.2f} | {r.cell(r.server[32])} | {r.cell(r.server[256])} "
            f"| {r.mean(r.spark) / r.mean(r.server[32]):.1f} | {r.server_failures} |"
        )
    memory = ["| model | " + " | ".join(results[0].peak_mb) + " |", "|---|" + "---:|" * len(results[0].peak_mb)]
    memory += [f"| {r.version} | " + " | ".join(f"{mb:,.0f} MB" for mb in r.peak_mb.values()) + " |" for r in results]
    lstm = next((r for r in results if "lstm" in r.model), None)
    checks = [target.check() for target in targets(lstm)] if lstm else []
    verdict = {True: "met", False: "**not met**", None: "not measured"}
    text = f"""# Batch scoring on Spark

Generated by `python -m benchmarks.batch` on {os.cpu_count()} cores ({time.strftime("%Y-%m-%d")}). Tweets/s over
the whole job: Spark reads the Parquet archive, answers every tweet as the server does (the registered model's
pyfunc, its language, the French route, its brands, in one Python call an Arrow batch), and writes Parquet
(`score_archive`, what `python -m batch score` runs; its time excludes starting Spark). The model alone: the
same pyfunc's `predict` over the same tweets, {CHUNK:,} a call, in {CORES} processes of one thread each. The
server: `bentoml serve`, one worker, {SERVER_USERS} locust users for {SERVER_SECONDS} s, locust on the same cores,
the tweets of answered requests (a user waits what a 503's Retry-After asks; failed requests are counted apart).
Each figure is the mean of {len(results[0].spark)} rounds that alternate the order of the three (the range in
brackets); ratios are of the means.

## Tweets per second

{chr(10).join(rows)}

## Targets

| target | measured | |
|---|---:|---|
{chr(10).join(f"| {what} | {value} | {verdict[met]} |" for what, value, met in checks)}

## Peak memory during the Spark job

Resident memory, the highest sample (every 0.2 s) of the rounds; the Python workers' figure adds up each
worker's, pages they share counted in each.

{chr(10).join(memory)}
"""
    path = out / "BATCH.md"
    stamped(path, text)
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=1_000_000, help="for the LSTM and the logistic regression")
    parser.add_argument("--transformer-tweets", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds of the three ways")
    parser.add_argument("--models", nargs="+", default=["tweet-lstm@champion", "tweet-logreg@champion"])
    parser.add_argument("--transformer", default="tweet-minilm@champion", help="skipped if not registered")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    setup_mlflow()
    results = []
    with tempfile.TemporaryDirectory(prefix="tweet-batch-bench-") as folder:
        for spec in args.models:
            results.append(measure(spec, args.tweets, Path(folder), args.rounds))
        try:
            results.append(measure(args.transformer, args.transformer_tweets, Path(folder), args.rounds))
        except ModelNotFound as missing:
            print(f"   no transformer: {missing}")
    path = report(results, args.out)
    print(path.read_text())
    return path


if __name__ == "__main__":
    with leaves_no_process():
        main()
