"""The load-test runner in smoke mode, and the random-weight DistilBERT the full run creates."""

import json
import os

import pytest

from benchmarks import run, soak, versus_mlflow


@pytest.mark.slow  # a server for each of five configurations and the model timed alone: ~2 min
def test_smoke_run_writes_a_report_with_real_figures(trained, tmp_path):
    report = run.main(
        [
            "--smoke",
            "--out",
            str(tmp_path),
            "--lstm",
            trained["lstm"].bento_tag,
            "--logreg",
            trained["logreg"].bento_tag,
        ]
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(r["server"], r["user"]) for r in results] == [
        ("echo", "OneTweet"),
        ("logreg batched", "OneTweet"),
        ("lstm batched", "OneTweet"),
        ("lstm batched", "Predict"),
        ("lstm batched", "Feedback"),
        ("mlflow models serve", "MLflowOneTweet"),  # the same LSTM version, served as a user could instead
        ("mlflow models serve", "MLflowManyTweets"),
        (run.EXPLAINED, "Predict"),  # /predict alone, then with explanations asked beside it
        (run.EXPLAINED, run.MIXED),
    ]
    for result in results:
        assert result["requests"] > 50 and result["failures"] == 0
        assert 0 < result["p50"] <= result["p95"] <= result["p99"]
    text = report.read_text()
    assert f"{os.cpu_count()} CPU cores" in text
    assert "tweets/s" in text and "random weights" in text
    # The model alone: the served ONNX runtime against the native Keras model, with its FLOPs and share of peak.
    assert "| lstm | onnx, 1 thread | 32 | 1 |" in text and "| lstm | keras (native) | 64 | 1 |" in text
    assert "GFLOP/s" in text and "ONNX / Keras" in text
    # Each family's explained tweet, timed by its own logged model.
    assert "## Explanations" in text and "| lstm | `" in text and "| logreg | `" in text
    for image in ("latency_throughput.png", "latency_vs_load.png"):
        assert (tmp_path / image).stat().st_size > 5_000


def test_random_distilbert_for_latency_is_registered_and_imported_into_bentoml():
    import bentoml
    import mlflow

    from benchmarks import distilbert_random

    tag = distilbert_random.create()
    model = bentoml.models.get(tag)
    assert model.tag.name == distilbert_random.NAME
    logged = mlflow.pyfunc.load_model(f"models:/{distilbert_random.NAME}/latest")
    assert logged.model_config["threshold"] == 0.5  # never evaluated: no threshold chosen on validation data
    run = mlflow.get_run(logged.metadata.run_id)
    assert run.data.tags["weights"] == "random"
    probs = logged.predict(["a tweet", "another tweet"])
    assert len(probs) == 2 and all(0 <= p <= 1 for p in probs)


def test_lstm_flops_follow_the_exported_architecture(trained):
    from benchmarks import model_only

    units, glove_dim = 8, 50  # conftest trains the LSTM with --units 8 on GloVe 6B-50d
    per_step = model_only.lstm_flops_per_step(trained["lstm"].bento_tag)
    assert per_step == 2 * 4 * units * (glove_dim + units) * 2  # directions x gates x multiply-adds x 2
    assert model_only.peak_gflops() > 0


def test_shadow_cost_compares_the_p99_of_the_same_rounds():
    import numpy as np

    from benchmarks import shadow

    rng = np.random.default_rng(1)
    rounds = [rng.exponential(50, 2_000) for _ in range(4)]
    runs = [{"challenger": c, "steady": times * factor} for times in rounds for c, factor in (("none", 1), ("x", 1.2))]
    assert shadow.p99_ratio(runs, "x", np.arange(4)) == pytest.approx(1.2)
    # A round's runs stay together when the rounds are resampled: the ratio holds in any resample.
    assert shadow.p99_ratio(runs, "x", np.array([3, 3, 0, 1])) == pytest.approx(1.2)


@pytest.mark.slow
def test_shadow_benchmark_measures_the_champion_alone_and_with_a_challenger(trained, tmp_path):
    from benchmarks import shadow

    lstm, logreg = trained["lstm"].bento_tag, trained["logreg"].bento_tag
    out = str(tmp_path / "SHADOW.md")
    one_short_round = ["--blocks", "1", "--rounds", "1", "--seconds", "6"]
    report = shadow.main(["--model-tag", lstm, "--challengers", logreg, *one_short_round, "--out", out])
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in report.read_text().splitlines() if line[:2] == "| "}
    alone, challenger = rows["none"], rows[logreg]
    assert int(alone[1].replace(",", "")) > 50 and alone[2] == challenger[2] == "0"  # requests, failed
    low, high = challenger[7].split(" to ")
    assert float(low[:-1]) <= float(challenger[6].strip("*%")) <= float(high[:-1])  # the estimate in its interval
    # Every request answered was scored in shadow or counted skipped (the server may also answer some locust left
    # at its stop). How many are skipped depends on the idle CPU the load leaves a SCHED_IDLE challenger: this load
    # saturates the cores, and the contract (docs/lifecycle.md) is that the champion never waits for it.
    scored, skipped = (int(challenger[i].strip(" |").replace(",", "")) for i in (8, 9))
    assert scored > 0 and scored + skipped >= int(challenger[1].replace(",", ""))


def test_the_targets_are_checked_on_what_was_measured_and_na_where_a_run_is_missing():
    def result(server: str, users: int, user: str = "OneTweet", rps: float = 100, p99: float = 50, failures: int = 0):
        return run.Result(server, user, users, 1000, failures, rps, 10, 20, p99, 1)

    results = [
        result("echo", 64, p99=80),
        result("lstm batched", 64, rps=95),
        result("lstm unbatched", 64, rps=20),
        result("lstm batched", 64, "Predict", rps=90, p99=150),
        result(run.MLFLOW, 64, "MLflowOneTweet", rps=40),
        result(run.EXPLAINED, run.EXPLAIN_USERS, "Predict", p99=40),
        result(run.EXPLAINED, run.EXPLAIN_USERS, run.MIXED, p99=46),
    ]
    rows = {what: (measured, met) for what, measured, met in run.checks(results, [], {"lstm": 3.2})}
    at = "64 users, echo's heaviest load with p99 < 100 ms"
    assert rows[f"LSTM batched / echo throughput, {at} (>= 0.90)"] == ("0.95", True)
    assert rows["LSTM batched / unbatched throughput, 64 users (>= 3)"] == ("4.75", True)
    assert rows[f"/predict, 1 tweet, / {run.MLFLOW}, 64 users (>= 2)"] == ("2.25", True)
    assert rows["/predict, 1 tweet, 64 users: p99 (< 100 ms)"] == ("150 ms", False)
    assert rows["DistilBERT p99 / LSTM p99, 10 users (>= 10)"] == ("n/a", None)  # not measured in this run
    assert rows["requests shed with our settings, echo and LSTM batched, any load (0)"] == ("0", True)
    assert not any(what.startswith("feedback") for what in rows)
    explaining = f"/predict p99 with one user in ten explaining / without, {run.EXPLAIN_USERS} users (<= 1.10)"
    assert rows[explaining] == ("1.15", False)
    assert rows["LSTM: an explained 20-word tweet, one thread (<= 5 ms)"] == ("3.20 ms", True)


def test_versus_mlflow_compares_the_means_of_alternated_rounds():
    def rounds(server: str, load: str, tweets_per_s: list[float], p99: float, failures: int = 0):
        return [
            versus_mlflow.Run(server, load, i, rate, p99, failures, 100.0, "") for i, rate in enumerate(tweets_per_s, 1)
        ]

    one, predict, many = (load for load, *_ in versus_mlflow.LOADS)
    runs = [
        *rounds(versus_mlflow.SERVICE, one, [900, 1100], 90),
        *rounds(run.MLFLOW, one, [500, 500], 300),
        *rounds(versus_mlflow.SERVICE, predict, [800, 800], 120, failures=2),
        *rounds(run.MLFLOW, predict, [500, 500], 300),
        *rounds(versus_mlflow.SERVICE, many, [6000, 5000], 80),
        *rounds(run.MLFLOW, many, [5000, 5000], 90),
    ]
    rows = {what: (measured, met) for what, measured, met in versus_mlflow.targets(runs)}
    assert rows[f"{one}, 64 users: tweets/s / mlflow's (>= 2.0)"] == ("2.00x", True)
    assert rows[f"{predict}, 64 users: tweets/s / mlflow's (>= 2.0)"] == ("1.60x", False)
    assert rows[f"{predict}: p99 (< 100 ms)"] == ("120 ms", False)
    assert rows[f"{predict}: failed requests (0)"] == ("4", False)
    assert rows[f"{many}, 8 users: tweets/s / mlflow's (>= 1.2)"] == ("1.10x", False)
    assert rows[f"{many}: p99 no worse than mlflow's"] == ("80 / 90 ms", True)


def test_soak_reads_the_servers_counts_and_compares_the_last_ten_minutes():
    metrics = "\n".join([
        '# TYPE bentoml_service_request_total counter',
        'bentoml_service_request_total{endpoint="/predict",http_response_code="200"} 1200.0',
        'bentoml_service_request_total{endpoint="/feedback",http_response_code="200"} 30.0',
        'bentoml_service_request_total{endpoint="/predict",http_response_code="503"} 2.0',
        'bentoml_service_request_in_progress{endpoint="/predict"} 3.0',
    ])  # fmt: skip
    assert soak.requests_by_outcome(metrics) == (1230, 2)

    def minute(i: int, mb: float) -> soak.Sample:
        return soak.Sample(i, mb, 300.0, 45, 1.0, 128, i * 100, 0, i * 1000, i * 10)

    samples = [minute(i, 350.0 if i <= 10 else 370.0) for i in range(21)]  # minutes 0-20
    assert soak.drift(samples, "worker_mb") == pytest.approx(370 / 350 - 1)  # minutes 11-20 against 1-10
    assert soak.drift(samples[:20], "worker_mb") is None  # too short to compare
