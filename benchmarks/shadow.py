"""What a challenger in shadow costs the champion: the same load with and without one.

    python -m benchmarks.shadow        # ~22 min; writes benchmarks/results/SHADOW.md

Real `bentoml serve` servers of the LSTM's champion, one worker, alone or with a challenger scored in
shadow, under 64 users sending one tweet a request back to back (locust, headless). A block starts one
server per configuration, then loads them in turn, a short run each, for a few rounds, each round in a
rotated order; each block starts fresh servers. The speed of shared cores drifts over minutes: short
runs taken in turn put the same drift on every configuration, which long runs minutes apart do not.

The p99 compared is that of every request a configuration answered over all the rounds (exact response
times, not locust's rounded ones), with a 95% interval from resampling the rounds. After each block, once
the challengers have scored what was waiting, the servers' /status says how many tweets each scored and
skipped.
"""

import argparse
import os
import tempfile
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import httpx
import numpy as np

from benchmarks.run import RESULTS, locust_errors, run_locust
from harness.servers import eventually, leaves_no_process, running_server
from tweet_sentiment.lifecycle.figures import stamped

USERS = 64
ALONE = "none"
WARM_UP_S = 2  # the first requests of a run wait for the users' connections; the last ones for locust to stop


def start_server(stack: ExitStack, model_tag: str, challenger: str, home: Path) -> str:
    """A server of model_tag, with the challenger in shadow unless ALONE, its state in home; its URL."""
    home.mkdir()
    args = [f"model_tag={model_tag}"] + ([f"challenger={challenger}"] if challenger != ALONE else [])
    env = {**os.environ, "TWEETS_FEEDBACK_DB": f"{home}/f.db", "TWEETS_MONITOR_DIR": f"{home}/mon"}
    return stack.enter_context(running_server(*args, env=env))


def run_block(
    model_tag: str, configurations: list[str], rounds: int, seconds: int, folder: Path
) -> tuple[list[dict], dict[str, dict]]:
    """Fresh servers, one per configuration, loaded in turn; a dict per run (its requests, failures and steady
    response times), then one per challenger with its /status counts."""
    runs = []
    with ExitStack() as stack:
        urls = {c: start_server(stack, model_tag, c, folder / f"server-{i}") for i, c in enumerate(configurations)}
        for round_ in range(rounds):  # each round starts one later: no configuration always runs first
            shift = round_ % len(configurations)
            for c in configurations[shift:] + configurations[:shift]:
                times = folder / f"times-{len(runs)}.txt"
                prefix = folder / str(len(runs))
                run_locust(urls[c], "OneTweet", USERS, seconds, prefix, times)
                start, ms, failed = np.loadtxt(times, ndmin=2).T  # its CSV misses the last moments' requests
                steady = ms[(start >= WARM_UP_S) & (start < seconds - 1)]
                runs.append(
                    {
                        "challenger": c,
                        "requests": len(ms),
                        "failures": int(failed.sum()),
                        "errors": locust_errors(prefix),
                        "steady": steady,
                    }
                )
                print(
                    f"{c}: {len(ms)} requests, {runs[-1]['failures']} failed, steady p99 "
                    f"{np.percentile(steady, 99):.1f} ms",
                    flush=True,
                )
        statuses = {c: drained_status(urls[c]) for c in configurations[1:]}
    return runs, statuses


def drained_status(url: str, within: float = 60) -> dict:
    """The server's shadow /status once its challenger has scored what was waiting (or ``within`` s passed)."""

    def status() -> dict:
        return httpx.post(f"{url}/status", json={}, timeout=30).json()["shadow"]

    eventually(lambda: status()["queued"] == 0, within)
    return status()


def p99_ratio(runs: list[dict], challenger: str, rounds: np.ndarray) -> float:
    """p99 with the challenger over p99 alone, of every steady request in the given rounds."""
    p99 = {}
    for c in (challenger, ALONE):
        mine = [r["steady"] for r in runs if r["challenger"] == c]  # in round order
        p99[c] = np.percentile(np.concatenate([mine[i] for i in rounds]), 99)
    return p99[challenger] / p99[ALONE]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-tag", default="tweet-lstm@champion")
    parser.add_argument("--challengers", nargs="+", default=["tweet-lstm@champion", "tweet-logreg@champion"])
    parser.add_argument("--seconds", type=int, default=12, help="of each run")
    parser.add_argument("--rounds", type=int, default=8, help="per block")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "SHADOW.md")
    args = parser.parse_args(argv)
    configurations = [ALONE, *args.challengers]
    runs, shadow = [], {c: {"scored": 0, "skipped": 0} for c in args.challengers}
    with tempfile.TemporaryDirectory() as raw:
        for block in range(args.blocks):
            folder = Path(raw) / str(block)
            folder.mkdir()
            block_runs, statuses = run_block(args.model_tag, configurations, args.rounds, args.seconds, folder)
            runs += block_runs
            for c, status in statuses.items():
                for count in shadow[c]:
                    shadow[c][count] += status[count]
    all_rounds = np.arange(args.blocks * args.rounds)
    resamples = np.random.default_rng(0).choice(all_rounds, size=(1000, len(all_rounds)))
    lines = [
        "# A challenger in shadow: what it costs the champion",
        "",
        f"Generated by `python -m benchmarks.shadow` on {date.today()}: `bentoml serve` of `{args.model_tag}`, one "
        f"worker, {USERS} users sending one tweet a request back to back (locust headless, on the same 2 cores). "
        f"{args.blocks} blocks of fresh servers, one per configuration, each loaded in turn for {args.seconds} s, "
        f"{args.rounds} rounds a block in a rotated order. Latencies: exact response times of the requests started "
        f"from {WARM_UP_S} s into a run to 1 s before its end, all runs of a configuration together; the interval "
        "resamples the rounds (95%). `scored` and `skipped`: the challenger's tweets, from the servers' `/status`.",
        "",
        "| challenger | requests | failed | req/s (median run) | p50 ms | p99 ms | p99 / alone | 95% interval "
        "| scored | skipped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in configurations:
        mine = [r for r in runs if r["challenger"] == c]
        p50, p99 = np.percentile(np.concatenate([r["steady"] for r in mine]), [50, 99])
        row = (
            f"| {c} | {sum(r['requests'] for r in mine):,} | {sum(r['failures'] for r in mine)} "
            f"| {np.median([r['requests'] for r in mine]) / args.seconds:.0f} | {p50:.1f} | {p99:.1f} |"
        )
        if c == ALONE:
            lines.append(row + " - | - | - | - |")
            continue
        low, high = np.percentile([p99_ratio(runs, c, rounds) for rounds in resamples], [2.5, 97.5])
        lines.append(
            row + f" **{p99_ratio(runs, c, all_rounds) - 1:+.1%}** | {low - 1:+.1%} to {high - 1:+.1%} "
            f"| {shadow[c]['scored']:,} | {shadow[c]['skipped']:,} |"
        )
    failed = [f"- {r['challenger']}, run {i + 1}: {r['errors']}" for i, r in enumerate(runs) if r["errors"]]
    if failed:
        lines += ["", "What failed, as locust counted it:", "", *failed]
    stamped(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return args.out


if __name__ == "__main__":
    with leaves_no_process():
        main()
