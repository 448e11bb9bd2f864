"""The load-test runner in smoke mode, and the random-weight DistilBERT the full run creates."""

import json
import os

from benchmarks import run


def test_smoke_run_writes_a_report_with_real_figures(trained, tmp_path):
    report = run.main(
        [
            "--smoke",
            "--seconds",
            "6",  # locust's own start-up took all of 3 s once on a loaded machine (no request made)
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
