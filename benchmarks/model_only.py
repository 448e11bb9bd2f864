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
from tweet_sentiment.core.models import resolve_model
from tweet_sentiment.training.data import load_airline
from tweet_sentiment.training.train import FAMILIES

CONCURRENT_CALLS = 3  # the service's batches in flight (serving.adaptive_batching)

Predict = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Rate:
    model: str  # family
    runtime: str  # "onnx, 1 thread", "keras (native)", ...
    per_call: int
    calls_at_once: int
    tweets_per_s: float
    flops_per_tweet: float | None = None  # the LSTM's: the steps of the tweet's own tokens

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
    settings = {k: v for k, v in config.get("predictor", {}).items() if k != "model_file"}  # the served file's
    model = FAMILIES[config["family"]].native(folder, **settings)
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


def mean_tokens(runtime: LSTMRuntime, tweets: list[str]) -> float:
    """Tokens an airline tweet has on average (at most the sequence length): the steps its prediction needs."""
    return float(np.mean(runtime.encode(clean_tweets(tweets[:10_000]))[1]))


def peak_gflops() -> float:
    """What the cores compute at most on dense float32 work: a 1024 x 1024 matrix product on one thread (the
    best of ten), times the cores. Measured rather than read off a datasheet: a VM's clock and vector units
    are not what /proc/cpuinfo says."""
    from threadpoolctl import threadpool_limits

    a, b = np.random.default_rng(0).random((2, 1024, 1024), dtype=np.float32)
    with threadpool_limits(1):
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(10))
    return (os.cpu_count() or 1) * 2 * 1024**3 / best / 1e9


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(tags: dict[str, str], seconds: float) -> list[Rate]:
    """The LSTM (ONNX by threads and calls at once, against Keras) and, where one is trained, the
    transformer (ONNX by threads, against torch)."""
    tweets = load_airline()["text"].tolist()
    predict, runtime, _ = served(tags["lstm"], threads=1)
    predict_2_threads, _, _ = served(tags["lstm"], threads=2)
    keras = native(tags["lstm"])
    # FLOPs a tweet: those of its own tokens, what its prediction needs. Keras computes the masked steps up to
    # the sequence length too, ONNX Runtime up to the call's longest tweet: such waste shows as a lower rate.
    flops = mean_tokens(runtime, tweets) * lstm_flops_per_step(tags["lstm"])
    rates = [
        *(
            Rate("lstm", "onnx, 1 thread", n, 1, tweets_per_second(predict, tweets, n, seconds), flops)
            for n in (1, 32, 64)
        ),
        Rate("lstm", "onnx, 1 thread", 64, CONCURRENT_CALLS, concurrent_rate(predict, tweets, 64, seconds), flops),
        Rate("lstm", "onnx, 2 threads", 64, 1, tweets_per_second(predict_2_threads, tweets, 64, seconds), flops),
        Rate("lstm", "keras (native)", 64, 1, tweets_per_second(keras, tweets, 64, seconds), flops),
        Rate("lstm", "keras (native)", 64, CONCURRENT_CALLS, concurrent_rate(keras, tweets, 64, seconds), flops),
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


# Twenty words, as an explained tweet of the target: a model call of 21 texts for occlusion.
TWENTY_WORDS = ("@united the crew was lovely and the seats were fine but we waited three hours at the gate "
                "with no update")  # fmt: skip


def explained_ms(tag: str, seconds: float) -> float:
    """Milliseconds to explain TWENTY_WORDS, one thread, the logged model's own ``explain`` back to back."""
    os.environ["OMP_NUM_THREADS"] = "1"  # read when the session is created, as in a server worker
    explain = bentoml.mlflow.load_model(tag).unwrap_python_model().explain
    explain([TWENTY_WORDS])  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        explain([TWENTY_WORDS])
        done += 1
    os.environ.pop("OMP_NUM_THREADS", None)
    return (time.perf_counter() - start) / done * 1000


def report_lines(rates: list[Rate], tags: dict[str, str]) -> list[str]:
    """The report's section on the models alone."""
    peak = peak_gflops()
    lines = [
        "## The models alone (no HTTP)",
        "",
        f"Raw tweets in, cleaning included, as the service calls them. `lstm` = `{tags['lstm']}`"
        + (f", `minilm` = `{tags['minilm']}`" if tags.get("minilm") else "")
        + ". The native model is the run's `native_model` artifact (Keras `predict_on_batch`, torch), what "
        "served before the ONNX export. MFLOP a tweet: the BiLSTM's multiply-adds for the tweet's own tokens "
        "(from the exported weights, at airline tweets' mean length), the same for every runtime: steps a "
        "runtime computes on padding show as a lower rate. Peak: a 1024 x 1024 float32 matrix product on one "
        f"thread (numpy, best of ten) times {os.cpu_count()} cores = {peak:.0f} GFLOP/s.",
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
