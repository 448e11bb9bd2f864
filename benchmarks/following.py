"""A server following its alias under load: the alias moved back and forth, answers checked, memory sampled;
writes benchmarks/results/FOLLOWING.md.

    python -m benchmarks.following                         # tweet-lstm's two newest versions, 20 moves, ~4 min
    python -m benchmarks.following --model tweet-lstm --versions 1 2 --moves 4

The alias is one of the benchmark's own (``bench-following``), never the champion: the registry's champions
stay as they are. One server (one worker) serves ``MODEL@bench-following`` and looks it up every second;
64 users send one tweet to /predict back to back (benchmarks.replicas.Load) while the alias moves every
``--every`` seconds.
"""

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import date

from mlflow import MlflowClient

from benchmarks.replicas import Load, failed
from benchmarks.run import RESULTS
from harness.servers import leaves_no_process, running_server, worker_process
from tweet_sentiment.core.config import settings
from tweet_sentiment.core.models import bento_model_for
from tweet_sentiment.lifecycle.figures import stamped

ALIAS = "bench-following"
POLL_S = 1


@dataclass(frozen=True)
class Move:
    version: str
    at: float  # when the alias moved
    switched_s: float | None  # until the first answer of the new version
    worker_mb: float  # resident memory once it answered


def move_and_wait(client: MlflowClient, name: str, version: str, load: Load, url: str, within: float) -> Move:
    at = time.time()
    client.set_registered_model_alias(name, ALIAS, version)
    label = f"{name}/{version}@{ALIAS}"
    deadline = at + within
    while time.time() < deadline:
        ends = [start + ms / 1000 for start, ms, status, model in list(load.answers) if model == label and start >= at]
        if ends:
            return Move(version, at, min(ends) - at, worker_process(url).memory_info().rss / 2**20)
        time.sleep(0.2)
    return Move(version, at, None, float("nan"))


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tweet-lstm")
    parser.add_argument("--versions", nargs=2, help="the two registered versions to move between (default: newest)")
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--every", type=float, default=8.0, help="seconds between moves")
    parser.add_argument("--users", type=int, default=64)
    args = parser.parse_args(argv)
    client = MlflowClient(settings().tracking_uri)
    versions = (
        args.versions or sorted((v.version for v in client.search_model_versions(f"name='{args.model}'")), key=int)[-2:]
    )
    for version in versions:  # imported before the run: the server's swap then only loads it
        bento_model_for(args.model, version, client)
    client.set_registered_model_alias(args.model, ALIAS, versions[0])
    moves: list[Move] = []
    try:
        with (
            tempfile.TemporaryDirectory() as folder,  # a fresh feedback database, never the user's
            running_server(
                f"model_tag={args.model}@{ALIAS}",
                env={**os.environ, "TWEETS_ALIAS_POLL_SECONDS": str(POLL_S), "TWEETS_FEEDBACK_DB": f"{folder}/f.db"},
            ) as url,
            Load(url, args.users) as load,
        ):
            time.sleep(args.every)
            for i in range(args.moves):
                version = versions[(i + 1) % 2]
                moves.append(move_and_wait(client, args.model, version, load, url, within=args.every * 4))
                print(moves[-1], flush=True)
                time.sleep(max(0.0, moves[-1].at + args.every - time.time()))
            answers = list(load.answers)
    finally:
        client.delete_registered_model_alias(args.model, ALIAS)
    swapping = [(m.at, m.at + (m.switched_s or args.every) + 1) for m in moves]
    during = [ms for start, ms, _, _ in answers if any(a <= start < b for a, b in swapping)]
    outside = [ms for start, ms, _, _ in answers if not any(a <= start < b for a, b in swapping)]
    switched = [m.switched_s for m in moves if m.switched_s is not None]
    first, last = moves[0].worker_mb, moves[-1].worker_mb
    checks = [
        ("failed requests (0)", f"{failed(answers)} of {len(answers):,}", failed(answers) == 0),
        (f"moves answered by the new version (all {len(moves)})", str(len(switched)), len(switched) == len(moves)),
        (f"seconds from a move to the new version's first answer, most (poll {POLL_S} s + load)",
         f"{max(switched, default=float('nan')):.1f}", None),
        ("p99 of requests started during a swap / outside one, ms", f"{p99(during):.0f} / {p99(outside):.0f}", None),
        (f"worker resident memory after {len(moves)} swaps / after the first (within 10%)",
         f"{last:.0f} / {first:.0f} MB ({last / first - 1:+.1%})", abs(last / first - 1) <= 0.10),
    ]  # fmt: skip
    lines = [
        "# A server following its alias under load",
        "",
        f"Generated by `python -m benchmarks.following` on {date.today()}: `{args.model}@{ALIAS}` served by one "
        f"worker looking its alias up every {POLL_S} s, {args.users} users sending one tweet to `/predict` back "
        f"to back (locust-free threads, on the same 2 cores), the alias moved {len(moves)} times between "
        f"versions {versions[0]} and {versions[1]}, every {args.every:g} s.",
        "",
        "| check | measured | met |",
        "|---|---|---|",
        *[
            f"| {what} | {value} | {'-' if met is None else 'yes' if met else '**no**'} |"
            for what, value, met in checks
        ],
        "",
        "| move | to version | seconds to its first answer | worker MB after |",
        "|---|---|---|---|",
        *[
            f"| {i} | {m.version} | {'never' if m.switched_s is None else f'{m.switched_s:.1f}'} | {m.worker_mb:.0f} |"
            for i, m in enumerate(moves, 1)
        ],
        "",
    ]
    stamped(RESULTS / "FOLLOWING.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    with leaves_no_process():
        main()
