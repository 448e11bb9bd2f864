"""The served exports: same predictions as the native models, no training framework at serving time."""

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from tweet_model.runtime import ONNX_MODEL, VOCABULARY, ExportedModelError, LSTMRuntime
from tweet_model.text import clean_tweets
from tweet_sentiment.training import lstm, transformer
from tweet_sentiment.training.data import load_airline, load_tweeteval_val
from tweet_sentiment.training.train import EXPORT_TOLERANCE, INT8_TOLERANCE, ExportMismatch, export_checked

TWEETS = [*clean_tweets(load_airline()["text"].tolist()[:300]), "", "! ! ?", " ".join(["great"] * 80)]
EXPORTED = {"lstm": lstm.FAMILY, "transformer": transformer.FAMILY}


def served_folder(result) -> Path:
    return Path(mlflow.artifacts.download_artifacts(f"models:/{result.name}/{result.version}")) / "artifacts" / "served"


def native_folder(result) -> Path:
    return Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="native_model"))


@pytest.mark.parametrize("family", EXPORTED)
def test_export_reproduces_the_native_model(trained, family):
    result, record = trained[family], EXPORTED[family]
    assert MlflowClient().get_run(result.run_id).data.metrics["export_max_abs_diff"] <= EXPORT_TOLERANCE
    settings = mlflow.pyfunc.load_model(f"models:/{result.name}/{result.version}").model_config["predictor"]
    native = record.native(native_folder(result), **{k: v for k, v in settings.items() if k != "model_file"})
    if settings.get("model_file", ONNX_MODEL) != ONNX_MODEL:
        pytest.skip("the int8 copy is served: checked against float by the precision rule, not for parity")
    served = record.runtime(served_folder(result), **settings)
    # Each tweet alone and in one batch with the longest: the batch is cut to its longest tweet, padding is masked.
    alone = np.concatenate([served.predict_proba([tweet]) for tweet in TWEETS[:40]])
    together = served.predict_proba(TWEETS)
    np.testing.assert_allclose(together[:40], alone, atol=1e-5)
    assert np.max(np.abs(native.predict_proba(TWEETS) - together)) <= EXPORT_TOLERANCE


def test_lstm_batch_is_cut_to_its_longest_tweet(trained):
    runtime = LSTMRuntime(served_folder(trained["lstm"]), sequence_length=40)
    ids, lengths = runtime.encode(["a b c", "a", ""])
    assert ids.shape == (3, 3) and lengths.tolist() == [3, 1, 0]
    ids, lengths = runtime.encode([" ".join(["w"] * 100)])
    assert ids.shape == (1, 40) and lengths.tolist() == [40]  # never past the trained sequence length


def test_an_export_that_does_not_reproduce_the_native_model_fails_the_run(trained, tmp_path):
    def shuffled_vocabulary(native, served, config):
        lstm.export(native, served, config)
        words = (served / VOCABULARY).read_text().split("\n")
        (served / VOCABULARY).write_text("\n".join(words[:2] + words[:1:-1]))  # same size, rows reversed

    broken = dataclasses.replace(lstm.FAMILY, export=shuffled_vocabulary)
    (tmp_path / "served").mkdir()
    with pytest.raises(ExportMismatch, match=r"differs from the native model by up to \d"):
        export_checked(
            broken,
            lstm.LSTMConfig(units=8),
            native_folder(trained["lstm"]),
            tmp_path / "served",
            load_tweeteval_val().head(200),
        )


def test_missing_or_mismatched_export_is_a_clear_error(trained, tmp_path):
    folder = shutil.copytree(served_folder(trained["lstm"]), tmp_path / "served")
    (folder / VOCABULARY).write_text("\n".join(["", "[UNK]", "only", "three"]))
    with pytest.raises(ExportedModelError, match=r"vocabulary\.txt has 4 words"):
        LSTMRuntime(folder)
    (folder / ONNX_MODEL).unlink()
    with pytest.raises(ExportedModelError, match=r"model\.onnx is missing"):
        LSTMRuntime(folder)


def test_transformer_serves_int8_only_within_tolerance_of_float(trained):
    result = trained["transformer"]
    metrics = MlflowClient().get_run(result.run_id).data.metrics
    close = all(
        abs(metrics[f"selection_float_{m}"] - metrics[f"selection_int8_{m}"]) <= INT8_TOLERANCE
        for m in ("balanced_accuracy", "roc_auc")
    )
    assert metrics["served_int8"] == float(close)
    onnx_files = sorted(p.name for p in served_folder(result).glob("*.onnx"))
    assert onnx_files == (["model.int8.onnx"] if close else ["model.onnx"])  # only what is served is shipped


@pytest.mark.parametrize("family", ["logreg", "lstm", "transformer"])
def test_logged_model_predicts_without_training_frameworks(trained, family):
    """A fresh interpreter where importing TensorFlow, Keras, torch or transformers fails loads and runs the model."""
    result = trained[family]
    script = f"""
import sys
class NoTrainingFrameworks:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "torch", "transformers"):
            raise ImportError(f"{{name}} is a training framework: not at serving time")
sys.meta_path.insert(0, NoTrainingFrameworks())
import mlflow
model = mlflow.pyfunc.load_model("models:/{result.name}/{result.version}")
probs = model.predict(["great flight, thanks!", "lost my bag again"])
assert len(probs) == 2 and all(0 <= p <= 1 for p in probs), probs
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
