"""A normal client's latency while the server is flooded: slow bodies and idle connections held open.

    python -m benchmarks.floods        # ~2 min; writes benchmarks/results/FLOODS.md

A real `bentoml serve` of the LSTM's champion. A second process holds IDLE connections that send nothing
and SLOW connections that send their headers and then one byte of body a second, reopening each one the
server closes (the header timeout, the body timeout). Meanwhile this process sends /predict requests one
after another, as one user would, and records their latency.
"""

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import time
from datetime import date
from pathlib import Path

import httpx

from benchmarks.run import RESULTS
from harness.servers import leaves_no_process, running_server
from tweet_sentiment.lifecycle.figures import stamped

SLOW = 256
# Each connection held costs the server a file descriptor: the flood holds as many as the machine's hard limit
# lets one process have, less a margin for the server's own files, and at most 20,000.
FDS = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
IDLE = min(20_000, FDS - SLOW - 1_024)


async def hold(host: str, port: int, idle: int, slow: int, ready: multiprocessing.Event) -> None:
    body = b'{"tweet": "' + b"slow " * 200 + b'"}'
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    async def idle_connection() -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection(host, port)
                await reader.read()  # until the server closes it
                writer.close()
            except OSError:
                await asyncio.sleep(0.5)

    async def slow_connection() -> None:
        while True:
            try:
                _, writer = await asyncio.open_connection(host, port)
                writer.write(head)
                for byte in body:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(1)
                writer.close()
            except OSError:
                await asyncio.sleep(0.5)

    tasks = []
    for i in range(idle + slow):
        tasks.append(asyncio.create_task(slow_connection() if i < slow else idle_connection()))
        if i % 500 == 0:
            await asyncio.sleep(0.05)  # let the server accept them as they come
    await asyncio.sleep(5)
    ready.set()
    await asyncio.gather(*tasks)


def flood(host: str, port: int, idle: int, slow: int, ready: multiprocessing.Event) -> None:
    asyncio.run(hold(host, port, idle, slow, ready))


def latencies(url: str, seconds: float) -> tuple[list[float], int]:
    """/predict one after another for ``seconds``: latencies in ms, and how many failed."""
    times, failures = [], 0
    with httpx.Client(base_url=url, timeout=10) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                ok = client.post("/predict", json={"tweet": "the crew was lovely"}).status_code == 200
            except httpx.HTTPError:
                ok = False
            times.append((time.perf_counter() - start) * 1000)
            failures += not ok
    return times, failures


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-tag", default="tweet-lstm@champion")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--idle", type=int, default=IDLE, help="idle connections held")
    parser.add_argument("--slow", type=int, default=SLOW, help="slow-body connections held")
    parser.add_argument("--out", type=Path, default=RESULTS / "FLOODS.md")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (FDS, FDS))  # soft to hard: inherited by the server and the flood
    rows = []
    with running_server(f"model_tag={args.model_tag}") as url:
        address = httpx.URL(url)
        calm, calm_failures = latencies(url, args.seconds / 2)
        rows.append(("none", calm, calm_failures))
        ready = multiprocessing.Event()
        flooder = multiprocessing.Process(target=flood, args=(address.host, address.port, args.idle, args.slow, ready))
        flooder.start()
        try:
            if not ready.wait(timeout=300):
                raise RuntimeError("the flood did not open its connections in 5 min")
            flooded, flooded_failures = latencies(url, args.seconds)
            rows.append((f"{args.idle:,} idle + {args.slow} slow-body connections held", flooded, flooded_failures))
        finally:
            flooder.terminate()
            flooder.join()
    lines = [
        "# Floods: a normal client's latency while the server is flooded",
        "",
        f"Generated by `python -m benchmarks.floods` on {date.today()}: `bentoml serve` of `{args.model_tag}`, "
        "one worker, 2 cores shared by the server, the flood and the client. The flood holds connections that "
        "send nothing and connections that send headers then a byte of body a second, reopening each one the "
        f"server closes; the client sends `/predict` one request after another. Descriptors a process may open "
        f"here: {FDS:,}.",
        "",
        "| flood | requests | failed | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
        *[
            f"| {name} | {len(times):,} | {failures} | {percentile(times, 50):.1f} | {percentile(times, 99):.1f} | "
            f"{max(times):.0f} |"
            for name, times, failures in rows
        ],
        "",
    ]
    stamped(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    with leaves_no_process():
        main()
