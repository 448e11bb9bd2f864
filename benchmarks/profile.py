"""Where a served worker spends its time under one load: py-spy samples the worker while locust runs.

    python -m benchmarks.profile                               # tweet-lstm@champion, 32 tweets a request, 8 users
    python -m benchmarks.profile --user OneTweet --users 64 --arg batching=false

Writes benchmarks/results/profiles/USER-USERS[-gil].md: the share of the worker's samples spent in each part of
the serving path (a sample counts for the innermost part on its stack) and in the functions that were running;
py-spy's collapsed stacks go beside it (.txt, not committed) for a flame graph (https://www.speedscope.app).
"""

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

from benchmarks.run import RESULTS, run_locust
from harness.servers import leaves_no_process, running_server, worker_process
from tweet_sentiment.lifecycle.figures import stamped

# Parts of the serving path, each found by frames of its own.
PARTS = {
    "model (ONNX Runtime session)": ("run (onnxruntime/",),
    "cleaning and token ids": ("(tweet_model/text.py", "encode (tweet_model/"),
    "language identification": ("(tweet_sentiment/core/language.py",),
    "the service's prediction code": ("(service.py",),
    "prediction log": ("(tweet_sentiment/core/prediction_log.py",),
    "Prometheus metrics": ("(prometheus_client/", "instruments.py"),
    "OpenTelemetry tracing": (
        "(opentelemetry/",
        "(asgi/__init__.py",
        "(trace/",
        "(_semconv.py",
        "(attributes/__init__.py",
        "(context/",
        "(propagate/",
        "(composite.py",
        "(metrics/_internal/",
        "(bentoml/_internal/utils/telemetry.py",
    ),
    "MLflow's input check": ("(mlflow/",),
    "the service's middlewares": ("(tweet_sentiment/serve/guards.py",),
    "adaptive batching dispatcher": ("(bentoml/_internal/marshal/dispatcher.py",),
    "BentoML request parsing and response encoding": ("(_bentoml_sdk/", "(_bentoml_impl/"),
    "pydantic": ("(pydantic/", "(pydantic_core/"),
    "JSON": ("(json/",),
    "uvicorn and starlette": ("(uvicorn/", "(starlette/", "(httptools/"),
    "asyncio": ("(asyncio/",),
    "threads waiting": ("Condition.wait", "threading.py"),
}


def record(pid: int, seconds: int, rate: int, out: Path, gil: bool) -> subprocess.Popen:
    """py-spy sampling ``pid`` (no pauses: --nonblocking) into collapsed stacks at ``out``; with ``gil``, only
    the samples of the thread holding the GIL: the work that runs one at a time, whatever the cores."""
    command = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--nonblocking",
        *(["--gil"] if gil else []),
        "--format",
        "raw",
        "-r",
        str(rate),
        "-d",
        str(seconds),
    ]
    return subprocess.Popen([*command, "-p", str(pid), "-o", str(out)], stdout=subprocess.DEVNULL)


def shares(stacks: Path) -> tuple[Counter[str], Counter[str], int]:
    """Samples by part and by running function, and the total, from collapsed stacks. A sample counts for the
    innermost part on its stack: the model's time is the model's, not that of the middlewares around it."""
    parts, functions, total = Counter(), Counter(), 0
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples, frames = int(count), stack.split(";")
        total += samples
        functions[frames[-1].rsplit(":", 1)[0] + ")"] += samples  # "name (file:line)" without the line
        parts[next((part for frame in reversed(frames) if (part := part_of(frame))), "other")] += samples
    return parts, functions, total


def part_of(frame: str) -> str | None:
    return next((part for part, markers in PARTS.items() if any(m in frame for m in markers)), None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-tag", default="tweet-lstm@champion")
    parser.add_argument("--user", default="ManyTweets", help="a locust user class of benchmarks/locustfile.py")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=200, help="samples a second")
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    parser.add_argument("--arg", action="append", default=[], help="more `bentoml serve --arg`s")
    args = parser.parse_args(argv)
    out = RESULTS / "profiles" / f"{args.user}-{args.users}{'-gil' if args.gil else ''}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as folder,  # a fresh feedback database, never the user's
        running_server(
            f"model_tag={args.model_tag}", *args.arg, env={**os.environ, "TWEETS_FEEDBACK_DB": f"{folder}/f.db"}
        ) as url,
    ):
        sampler = record(worker_process(url).pid, args.seconds, args.rate, out, args.gil)
        locust = run_locust(url, args.user, args.users, args.seconds, Path(folder) / "locust")
        sampler.wait(timeout=60)
    parts, functions, total = shares(out)
    held = "samples of the thread holding the GIL (`--gil`)" if args.gil else "samples of every thread"
    lines = [
        f"# Where the worker's time goes: {args.user}, {args.users} users",
        "",
        f"Generated by `python -m benchmarks.profile --user {args.user} --users {args.users}"
        f"{' --gil' if args.gil else ''}` on {date.today()}: `{args.model_tag}` served by one worker, locust on "
        f"the same 2 cores for {args.seconds} s ({locust['rps']:.0f} requests/s under py-spy), {total:,} {held} "
        f"at {args.rate} a second. The collapsed stacks (`{out.name}`, for a flame graph) stay beside this file.",
    ]
    for title, counts in (("part of the serving path", parts), ("running function", functions)):
        lines += ["", f"| {title} | share of samples |", "|---|---|"]
        lines += [f"| {name} | {samples / total:.1%} |" for name, samples in counts.most_common(12)]
    stamped(out.with_suffix(".md"), "\n".join([*lines, ""]))
    print("\n".join(lines))


if __name__ == "__main__":
    with leaves_no_process():
        main(sys.argv[1:])
