"""The models alone, no HTTP: the served runtime against the native model it was exported from, and how
close the LSTM runs to what the cores can compute.

Each call gets raw tweets and cleans them, as the service's calls do. The native model (Keras, or torch
for the transformer) is the run's ``native_model`` artifact: what was served before the ONNX export.
"""

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import mlflow
import numpy as np

from tweet_model.runtime import ONNX_MODEL, LSTMRuntime
from tweet_model.text import clean_tweets
from tweet_sentiment.data import load_airline
from tweet_sentiment.registry import resolve_model
from tweet_sentiment.train import FAMILIES

CONCURRENT_CALLS = 3  # the service's batches in flight (serving.adaptive_batching)
# float32 FLOPs a core completes per cycle at most: two 256-bit FMA pipes x 8 lanes x 2 (multiply and add).
# AVX2 cores and AMD's AVX-512 (two 256-bit halves) alike; Intel's server cores with two 512-bit FMAs double it.
FLOPS_PER_CYCLE = 32

Predict = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Rate:
    model: str  # family
    runtime: str  # "onnx, 1 thread", "keras (native)", ...
    per_call: int
    calls_at_once: int
    tweets_per_s: float
    flops_per_tweet: float | None = None  # the LSTM's, as computed: padding steps included

    @property
    def gflops_per_s(self) -> float | None:
        return self.tweets_per_s * self.flops_per_tweet / 1e9 if self.flops_per_tweet else None


def tweets_per_second(predict: Predict, tweets: list[str], size: int, seconds: float) -> float:
    """Calls of ``size`` tweets one after another for ``seconds``, after two warm-up calls."""
    predict(tweets[:size])
    predict(tweets[size : 2 * size])  # Keras traces the first two batch shapes
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predict(tweets[done % 10_000 : done % 10_000 + size])
        done += size
    return done / (time.perf_counter() - start)


def concurrent_rate(predict: Predict, tweets: list[str], size: int, seconds: float) -> float:
    """Tweets/s of CONCURRENT_CALLS threads calling at once: what one server worker computes at most."""
    with ThreadPoolExecutor(CONCURRENT_CALLS) as pool:
        return sum(pool.map(lambda _: tweets_per_second(predict, tweets, size, seconds), range(CONCURRENT_CALLS)))


def served(tag: str, threads: int) -> tuple[Predict, Any, dict[str, Any]]:
    """The served model's predict with ``threads`` ONNX Runtime threads, its runtime and its config."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read when the session is created, as in a server worker
    model = bentoml.mlflow.load_model(tag)
    runtime = model.unwrap_python_model().runtime
    return (lambda texts: runtime.predict_proba(clean_tweets(texts))), runtime, model.model_config


def native(tag: str) -> Predict:
    """The native model of the version ``tag`` was imported from, loaded as the trainer saved it."""
    version = resolve_model(tag)
    config = bentoml.mlflow.load_model(tag).model_config
    run_id = mlflow.MlflowClient().get_model_version(version.name, version.version).run_id
    folder = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="native_model"))
    model = FAMILIES[config["family"]].native(folder, **config.get("predictor", {}))
    return lambda texts: model.predict_proba(clean_tweets(texts))


def lstm_flops_per_step(tag: str) -> float:
    """FLOPs one token costs the BiLSTM, from the exported weights: two directions x four gates x
    (input + recurrent) multiply-adds. The embedding lookup and the dense head are negligible."""
    import onnx
    from onnx import numpy_helper

    [exported] = Path(bentoml.models.get(tag).path).glob(f"mlflow_model/artifacts/*/{ONNX_MODEL}")
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(exported).graph.initializer}
    directions, gates_x_units, embedding_dim = weights["W"].shape
    return directions * gates_x_units * (embedding_dim + gates_x_units // 4) * 2


def computed_steps(runtime: LSTMRuntime, tweets: list[str], size: int) -> float:
    """Mean steps the trimmed model computes a tweet in calls of ``size``: each call runs to its longest tweet."""
    calls = [clean_tweets(tweets[i : i + size]) for i in range(0, 10_000, size)]
    return float(np.mean([runtime.encode(call)[0].shape[1] for call in calls]))


def peak_gflops() -> float:
    """The cores' float32 peak at their nominal clock (/proc/cpuinfo)."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    mhz = next(float(line.split(":")[1]) for line in cpuinfo if line.startswith("cpu MHz"))
    return (os.cpu_count() or 1) * mhz * 1e6 * FLOPS_PER_CYCLE / 1e9


def measure(tags: dict[str, str], seconds: float) -> list[Rate]:
    """The LSTM (ONNX by threads and calls at once, against Keras) and, where one is trained, the
    transformer (ONNX by threads, against torch)."""
    tweets = load_airline()["text"].tolist()
    per_step = lstm_flops_per_step(tags["lstm"])
    predict, runtime, _ = served(tags["lstm"], threads=1)
    predict_2_threads, _, _ = served(tags["lstm"], threads=2)
    keras = native(tags["lstm"])
    padded = runtime.sequence_length * per_step  # Keras computes every step, masked or not
    steps = {size: computed_steps(runtime, tweets, size) * per_step for size in (1, 32, 64)}
    rates = [
        *(
            Rate("lstm", "onnx, 1 thread", n, 1, tweets_per_second(predict, tweets, n, seconds), steps[n])
            for n in steps
        ),
        Rate("lstm", "onnx, 1 thread", 64, CONCURRENT_CALLS, concurrent_rate(predict, tweets, 64, seconds), steps[64]),
        Rate("lstm", "onnx, 2 threads", 64, 1, tweets_per_second(predict_2_threads, tweets, 64, seconds), steps[64]),
        Rate("lstm", "keras (native)", 64, 1, tweets_per_second(keras, tweets, 64, seconds), padded),
        Rate("lstm", "keras (native)", 64, CONCURRENT_CALLS, concurrent_rate(keras, tweets, 64, seconds), padded),
    ]
    if tags.get("minilm"):
        torch_model = native(tags["minilm"])
        for size in (1, 32):
            for threads in (1, 2):
                predict, _, config = served(tags["minilm"], threads)
                kind = "int8" if "int8" in config.get("predictor", {}).get("model_file", "") else "float"
                value = tweets_per_second(predict, tweets, size, seconds)
                rates.append(Rate("minilm", f"onnx {kind}, {threads} thread{'s' * (threads > 1)}", size, 1, value))
            value = tweets_per_second(torch_model, tweets, size, seconds)
            rates.append(Rate("minilm", "torch (native)", size, 1, value))
    os.environ.pop("OMP_NUM_THREADS", None)
    return rates


def find(rates: list[Rate], model: str, runtime: str, per_call: int, at_once: int = 1) -> Rate | None:
    return next(
        (r for r in rates if (r.model, r.runtime, r.per_call, r.calls_at_once) == (model, runtime, per_call, at_once)),
        None,
    )


def report_lines(rates: list[Rate], tags: dict[str, str]) -> list[str]:
    """The report's section on the models alone."""
    peak = peak_gflops()
    lines = [
        "## The models alone (no HTTP)",
        "",
        f"Raw tweets in, cleaning included, as the service calls them. `lstm` = `{tags['lstm']}`"
        + (f", `minilm` = `{tags['minilm']}`" if tags.get("minilm") else "")
        + ". The native model is the run's `native_model` artifact (Keras `predict_on_batch`, torch), what "
        "served before the ONNX export. FLOPs a tweet count what the LSTM computes: every step for Keras, "
        "the call's longest tweet for ONNX (airline tweets, consecutive calls). "
        f"Peak: {os.cpu_count()} cores x nominal clock x {FLOPS_PER_CYCLE} float32 FLOPs a cycle = {peak:.0f} GFLOP/s.",
        "",
        "| model | runtime | tweets a call | calls at once | tweets/s | MFLOP a tweet | GFLOP/s | share of peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rates:
        gflops = r.gflops_per_s
        flops = (
            ["", "", ""]
            if gflops is None
            else [f"{r.flops_per_tweet / 1e6:.2f}", f"{gflops:.1f}", f"{gflops / peak:.0%}"]
        )
        cells = [r.model, r.runtime, str(r.per_call), str(r.calls_at_once), f"{r.tweets_per_s:,.0f}", *flops]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]
