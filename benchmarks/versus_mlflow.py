"""This service against what a user would run instead, `mlflow models serve` of the same model version, in
alternated runs, with the servers' CPU per tweet next to the model's own.

    python -m benchmarks.versus_mlflow            # ~10 min; writes benchmarks/results/VERSUS_MLFLOW.md
    python -m benchmarks.versus_mlflow --rounds 1 --seconds 5

Both servers run at once with one worker each (the idle one costs nothing), and each load is run on one, then
on the other, round after round, so that neither gets the machine's better minutes. A server's CPU is that of
its whole process tree (/proc, through psutil) over the run, divided by the tweets it answered. The model's own
CPU per tweet is this process's CPU time while one thread calls the logged pyfunc (cleaning included, one model
thread, as a worker runs it) back to back.
"""

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psutil

from benchmarks.run import MLFLOW, RESULTS, locust_errors, run_locust
from harness.servers import leaves_no_process, running_mlflow_server, running_server
from tweet_model.pyfunc import load_predict_proba
from tweet_sentiment.core.models import resolve_model
from tweet_sentiment.lifecycle.figures import stamped
from tweet_sentiment.serve.loading import pyfunc_path
from tweet_sentiment.training.data import load_airline

SERVICE = "this service"
# (what, tweets a request, users, locust user class against this service, against mlflow's /invocations)
LOADS = [
    ("/predict_batch, 1 tweet", 1, 64, "OneTweet", "MLflowOneTweet"),
    ("/predict, 1 tweet", 1, 64, "Predict", "MLflowOneTweet"),
    ("32 tweets a request", 32, 8, "ManyTweets", "MLflowManyTweets"),
]


@dataclass(frozen=True)
class Run:
    server: str
    load: str
    round: int
    tweets_per_s: float
    p99: float
    failures: int
    cpu_us_per_tweet: float
    errors: str  # what failed, as locust counted it


def process_tree(url: str) -> list[psutil.Process]:
    """The processes of the server listening at ``url``: the one started with its port, and its descendants."""
    port = url.rsplit(":", 1)[1]
    started = [p for p in psutil.process_iter(["cmdline"]) if port in (p.info["cmdline"] or [])]
    pids = {p.pid for p in started}
    [root] = [p for p in started if p.ppid() not in pids]
    return [root, *root.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def measure(url: str, server: str, load: tuple, round_: int, seconds: int, folder: Path) -> Run:
    name, tweets, users, ours, theirs = load
    user = theirs if server == MLFLOW else ours
    tree = process_tree(url)
    before = cpu_seconds(tree)
    prefix = folder / f"{server}-{user}-{round_}".replace(" ", "_")
    stats = run_locust(url, user, users, seconds, prefix)
    answered = (stats["requests"] - stats["failures"]) * tweets
    cpu = cpu_seconds(tree) - before
    errors = locust_errors(prefix)
    return Run(
        server, name, round_, stats["rps"] * tweets, stats["p99"], stats["failures"], cpu / answered * 1e6, errors
    )


def model_cpu_us_per_tweet(bento_tag: str, per_call: int, seconds: float) -> float:
    """The logged pyfunc alone with one model thread, as the service's worker runs it (``model_threads=1``),
    ``per_call`` tweets a call back to back: this process's CPU time per tweet."""
    os.environ["OMP_NUM_THREADS"] = "1"  # read by the ONNX session as it is created
    predict = load_predict_proba(pyfunc_path(bento_tag))
    tweets = list(load_airline()["text"].head(12_000))
    predict(tweets[:per_call])  # warm-up: the runtime plans its first shapes
    done, start = 0, time.process_time()
    while (used := time.process_time() - start) < seconds:
        predict(tweets[done % 10_000 : done % 10_000 + per_call])
        done += per_call
    return used / done * 1e6


def alternated(model_tag: str, rounds: int, seconds: int) -> Iterator[Run]:
    model = resolve_model(model_tag)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        env = {"TWEETS_FEEDBACK_DB": str(folder / "feedback.db")}
        urls = {
            SERVICE: stack.enter_context(running_server(f"model_tag={model_tag}", env={**os.environ, **env})),
            MLFLOW: stack.enter_context(running_mlflow_server(f"models:/{model.name}/{model.version}", 1)),
        }
        for round_ in range(1, rounds + 1):
            for load in LOADS:
                order = (SERVICE, MLFLOW) if round_ % 2 else (MLFLOW, SERVICE)
                for server in order:
                    run = measure(urls[server], server, load, round_, seconds, folder)
                    print(run, flush=True)
                    yield run


PROFILE_NOTE = (
    "Where one worker's time goes on 32-tweet requests, in the work that holds the interpreter lock (which "
    "bounds a worker): [profiles/ManyTweets-8-gil.md](profiles/ManyTweets-8-gil.md) "
    "(`python -m benchmarks.profile --user ManyTweets --users 8 --gil`)."
)


def mean(runs: list[Run], server: str, load: str, key: str) -> float:
    return statistics.fmean(getattr(r, key) for r in runs if r.server == server and r.load == load)


def report(runs: list[Run], model_tag: str, model_cpu: dict[int, float], rounds: int, seconds: int) -> list[str]:
    lines = [
        "# This service against `mlflow models serve`",
        "",
        f"Generated by `python -m benchmarks.versus_mlflow` on {date.today()}: `{model_tag}` served by this "
        f"service (`bentoml serve`, one worker, its defaults) and by `{MLFLOW} --env-manager local -w 1` (the same "
        f"version), both running at once; locust (FastHttpUser) on the same 2 cores, {seconds} s a load, "
        f"{rounds} rounds, the order of the two servers swapped every round. Figures are the rounds' means; CPU is "
        "the server's whole process tree over the run, per tweet answered.",
        "",
        "| load | server | tweets/s | p99 ms | failed | CPU µs a tweet | x the model's |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, tweets, users, _, _ in LOADS:
        for server in (SERVICE, MLFLOW):
            cpu = mean(runs, server, name, "cpu_us_per_tweet")
            lines.append(
                f"| {name}, {users} users | {server} | {mean(runs, server, name, 'tweets_per_s'):,.0f} | "
                f"{mean(runs, server, name, 'p99'):.0f} | "
                f"{sum(r.failures for r in runs if r.server == server and r.load == name)} | {cpu:.0f} | "
                f"{cpu / model_cpu[tweets]:.1f} |"
            )
    lines += [
        "",
        "The model's own CPU a tweet (the logged pyfunc, cleaning included, one model thread, back to back): "
        + ", ".join(f"{cpu:.0f} µs at {n} tweet{'s' if n > 1 else ''} a call" for n, cpu in sorted(model_cpu.items()))
        + ".",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for what, value, met in targets(runs):
        lines.append(f"| {what} | {value} | {'yes' if met else '**no**'} |")
    lines += ["", PROFILE_NOTE]
    lines += ["", "## Every run", "", "| round | load | server | tweets/s | p99 ms | failed | CPU µs a tweet |"]
    lines += ["|---|---|---|---|---|---|---|"]
    lines += [
        f"| {r.round} | {r.load} | {r.server} | {r.tweets_per_s:,.0f} | {r.p99:.0f} | "
        f"{r.failures}{f' ({r.errors})' if r.errors else ''} | {r.cpu_us_per_tweet:.0f} |"
        for r in runs
    ]
    return [*lines, ""]


def targets(runs: list[Run]) -> list[tuple[str, str, bool]]:
    """The targets of issue 33, as (what, measured, met)."""
    found = []
    for name, _, users, _, _ in LOADS:
        ratio = mean(runs, SERVICE, name, "tweets_per_s") / mean(runs, MLFLOW, name, "tweets_per_s")
        ours, theirs = mean(runs, SERVICE, name, "p99"), mean(runs, MLFLOW, name, "p99")
        failures = sum(r.failures for r in runs if r.server == SERVICE and r.load == name)
        goal = 1.2 if users == 8 else 2.0
        found.append((f"{name}, {users} users: tweets/s / mlflow's (>= {goal})", f"{ratio:.2f}x", ratio >= goal))
        if users == 8:
            found.append((f"{name}: p99 no worse than mlflow's", f"{ours:.0f} / {theirs:.0f} ms", ours <= theirs))
        else:
            found.append((f"{name}: p99 (< 100 ms)", f"{ours:.0f} ms", ours < 100))
        found.append((f"{name}: failed requests (0)", str(failures), failures == 0))
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-tag", default="tweet-lstm@champion")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS / "VERSUS_MLFLOW.md")
    args = parser.parse_args(argv)
    runs = list(alternated(args.model_tag, args.rounds, args.seconds))
    bento_tag = resolve_model(args.model_tag).bento_tag
    model_cpu = {n: model_cpu_us_per_tweet(bento_tag, n, max(5, args.seconds / 2)) for n in (1, 32)}
    lines = report(runs, args.model_tag, model_cpu, args.rounds, args.seconds)
    stamped(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    with leaves_no_process():
        main()
