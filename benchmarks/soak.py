"""A long steady run: the LSTM served with a challenger in shadow and feedback in use, its memory, files and
metric series sampled every minute; writes benchmarks/results/SOAK.md.

    python -m benchmarks.soak                  # 30 min
    python -m benchmarks.soak --minutes 3      # a quick look

Locust runs 8 users back to back, two of each: one tweet to /predict_batch, one to /predict, 32 tweets a
request, and a reporter that asks for a tweet and reports on the answer by its id (the feedback the
challenger is judged on). Everything that could grow with requests is shown minute by minute: the worker's
and the challenger's resident memory, the worker's open files, the prediction log on disk (rotated, its size
bounded), the metric series in /metrics, the shadow's tallies.
"""

import argparse
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import psutil

from benchmarks.run import RESULTS, run_locust
from harness.servers import leaves_no_process, running_server, worker_process
from tweet_sentiment.lifecycle.figures import stamped

USERS = "OneTweet Predict ManyTweets Reporter"  # locust user classes, as many users of each
FLAT = 0.05  # the last 10 minutes' mean resident memory within 5% of the 10 before


@dataclass(frozen=True)
class Sample:
    minute: int
    worker_mb: float
    challenger_mb: float
    open_files: int
    log_mb: float
    series: int
    answered: int  # requests answered 2xx, from the server's own count
    failed: int  # answered otherwise
    shadow_scored: int
    shadow_labelled: int


def worker_and_challenger(url: str) -> tuple[psutil.Process, psutil.Process]:
    """The server's one worker, and the challenger's process (the worker's child)."""
    worker = worker_process(url)
    [challenger] = [p for p in worker.children() if "spawn_main" in " ".join(p.cmdline())]  # not its helpers
    return worker, challenger


def requests_by_outcome(metrics: str) -> tuple[int, int]:
    """(2xx, other) requests in BentoML's request counter of /metrics."""
    answered = failed = 0
    for line in metrics.splitlines():
        if line.startswith("bentoml_service_request_total{"):
            count = int(float(line.rsplit(" ", 1)[1]))
            if 'http_response_code="2' in line:
                answered += count
            else:
                failed += count
    return answered, failed


def sample(url: str, minute: int, log_folder: Path) -> Sample:
    worker, challenger = worker_and_challenger(url)
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    shadow = httpx.post(f"{url}/status", json={}, timeout=30).json()["shadow"]
    answered, failed = requests_by_outcome(metrics)
    return Sample(
        minute=minute,
        worker_mb=worker.memory_info().rss / 2**20,
        challenger_mb=challenger.memory_info().rss / 2**20,
        open_files=worker.num_fds(),
        log_mb=sum(f.stat().st_size for f in log_folder.rglob("*") if f.is_file()) / 2**20,
        series=sum(1 for line in metrics.splitlines() if line and not line.startswith("#")),
        answered=answered,
        failed=failed,
        shadow_scored=shadow["scored"],
        shadow_labelled=shadow["labelled"],
    )


def soak(champion: str, challenger: str, minutes: int) -> tuple[list[Sample], dict[str, float]]:
    """Serve, load for ``minutes``, sample every minute; returns the samples and locust's totals."""
    with tempfile.TemporaryDirectory(prefix="tweet-sentiment-soak-") as folder:
        env = {**os.environ, "TWEETS_FEEDBACK_DB": f"{folder}/feedback.db", "TWEETS_MONITOR_DIR": f"{folder}/monitor"}
        with running_server(f"model_tag={champion}", f"challenger={challenger}", env=env) as url:
            totals: dict[str, float] = {}
            seconds = minutes * 60
            locust = threading.Thread(
                target=lambda: totals.update(run_locust(url, USERS, 8, seconds, Path(folder) / "locust"))
            )
            start = time.monotonic()
            locust.start()
            samples = [sample(url, 0, Path(folder) / "monitor")]
            for minute in range(1, minutes + 1):
                time.sleep(max(0.0, start + minute * 60 - time.monotonic()))
                samples.append(sample(url, minute, Path(folder) / "monitor"))
                print(samples[-1], flush=True)
            locust.join()
    return samples, totals


def drift(samples: list[Sample], field: str, window: int = 10) -> float | None:
    """The last ``window`` minutes' mean of ``field`` over the ``window`` before, less 1 (None if too short)."""
    if len(samples) < 2 * window + 1:
        return None
    values = [getattr(s, field) for s in samples]
    return statistics.fmean(values[-window:]) / statistics.fmean(values[-2 * window : -window]) - 1


def report(samples: list[Sample], totals: dict[str, float], champion: str, challenger: str) -> list[str]:
    first, last = samples[1], samples[-1]
    checks = [
        ("requests failed, locust's count (0)", f"{int(totals['failures'])} of {int(totals['requests']):,}",
         totals["failures"] == 0),
        ("requests answered other than 2xx, the server's count (0)", str(last.failed), last.failed == 0),
        *[
            (f"{name} resident memory, last 10 minutes / the 10 before (within {FLAT:.0%})",
             "n/a" if d is None else f"{d:+.1%}", d is not None and abs(d) <= FLAT)
            for name, d in (("worker", drift(samples, "worker_mb")), ("challenger", drift(samples, "challenger_mb")))
        ],
        ("worker's open files, end / after the first minute", f"{last.open_files} / {first.open_files}",
         last.open_files <= first.open_files + 5),
        ("metric series, end / after the first minute", f"{last.series} / {first.series}",
         last.series == first.series),
    ]  # fmt: skip
    lines = [
        "# Soak: a long steady run",
        "",
        f"Generated by `python -m benchmarks.soak` on {date.today()}: `{champion}` served (one worker) with "
        f"`{challenger}` in shadow, {len(samples) - 1} minutes of 8 locust users back to back on the same 2 cores "
        "(two each: one tweet to `/predict_batch`, one to `/predict`, 32 tweets a request, and a reporter that "
        "reports on each answer by its id). Sampled every minute.",
        "",
        "| check | measured | met |",
        "|---|---|---|",
        *[f"| {what} | {value} | {'yes' if met else '**no**'} |" for what, value, met in checks],
        "",
        "| minute | worker MB | challenger MB | open files | prediction log MB | metric series | answered "
        "| failed | shadow scored | scored with a label |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {s.minute} | {s.worker_mb:.0f} | {s.challenger_mb:.0f} | {s.open_files} | {s.log_mb:.1f} | "
            f"{s.series} | {s.answered:,} | {s.failed} | {s.shadow_scored:,} | {s.shadow_labelled:,} |"
            for s in samples
        ],
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--champion", default="tweet-lstm@champion")
    parser.add_argument("--challenger", default="tweet-logreg@champion")
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS / "SOAK.md")
    args = parser.parse_args(argv)
    samples, totals = soak(args.champion, args.challenger, args.minutes)
    lines = report(samples, totals, args.champion, args.challenger)
    stamped(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    with leaves_no_process():
        main()
