"""The training flow all three trainers share: data, MLflow run, logged model, evaluation, registry, BentoML."""

import argparse
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from tweet_sentiment import data, evaluate
from tweet_sentiment.config import SEED
from tweet_sentiment.feedback import FeedbackStore
from tweet_sentiment.predict import EXAMPLE_TWEETS
from tweet_sentiment.registry import Evaluation, fingerprint, import_to_bento, model_label, promote_if_better
from tweet_sentiment.text import clean_tweets
from tweet_sentiment.tracking import setup_mlflow

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
REQUIREMENTS = {
    "logreg": ["scikit-learn", "joblib"],
    "lstm": ["tensorflow-cpu", "keras"],
    "transformer": ["torch", "transformers"],
}

Curves = dict[str, list[float]]
FitFn = Callable[[data.Split, Any, Path], Curves]
"""Train on the split with the config, save the model into the folder, return per-epoch/step curves."""


@dataclass(frozen=True)
class TrainedModel:
    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    promoted: bool
    bento_tag: str | None

    def label(self, alias: str | None = None) -> str:
        return model_label(self.name, self.version, alias)


def log_model(family: str, folder: Path, name: str) -> mlflow.models.model.ModelInfo:
    """Log the saved model in ``folder`` as the shared pyfunc (raw tweets in) and register it as ``name``."""
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=PACKAGE_DIR / "mlflow_model.py",
        artifacts={"model": str(folder)},
        model_config={"family": family},
        code_paths=[str(PACKAGE_DIR)],
        input_example=EXAMPLE_TWEETS,
        pip_requirements=[f"{p}=={version(p)}" for p in ["mlflow", "numpy", "pandas", *REQUIREMENTS[family]]],
        registered_model_name=name,
    )


def _log_curves(curves: Curves) -> None:
    for key, values in curves.items():
        for step, value in enumerate(values):
            mlflow.log_metric(f"curve_{key}", value, step=step)
    if curves:
        mlflow.log_figure(evaluate.curves_figure(curves), "training_curves.png")


def run(
    family: str,
    name: str,
    config: Any,
    fit: FitFn,
    dataset: str = "airline",
    sample: int | None = None,
    with_feedback: bool = False,
    to_bento: bool = True,
) -> TrainedModel:
    """Train one model and take it all the way from data to the BentoML store."""
    setup_mlflow()
    parts = data.split(data.load_dataset(dataset, sample))
    externals = {n: data.load_external(n) for n in data.EXTERNAL_TEST_SETS}
    feedback = None
    if with_feedback:
        parts, feedback = data.add_feedback(
            parts, pd.DataFrame(FeedbackStore().labelled()), [parts.val, parts.test, *externals.values()]
        )
    # A sampled (quick) run evaluates on equally small samples of the external sets.
    sets = {"val": parts.val, "test": parts.test} | {n: data.subsample(f, sample) for n, f in externals.items()}
    with mlflow.start_run(run_name=name) as active, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / family
        folder.mkdir()
        mlflow.set_tags({"family": family, "registered_model": name})
        mlflow.log_params(
            {
                **asdict(config),
                "dataset": dataset,
                "sample": sample,
                "with_feedback": with_feedback,
                "feedback_rows": 0 if feedback is None else len(feedback),
                "seed": SEED,
                "train_rows": len(parts.train),
                "val_rows": len(parts.val),
                "test_rows": len(parts.test),
            }
        )
        mlflow.log_input(mlflow.data.from_pandas(parts.train, name=f"{dataset}-train"), context="training")
        if feedback is not None:
            mlflow.log_input(mlflow.data.from_pandas(feedback, name="feedback"), context="training")
            mlflow.log_table(feedback, "feedback_train.json")  # exactly which corrections went in
        vocabulary = Counter(token for tweet in clean_tweets(parts.train["text"].tolist()) for token in tweet.split())
        mlflow.log_text("\n".join(f"{t}\t{c}" for t, c in vocabulary.most_common()), "training_vocabulary.tsv")
        log.info("training %s on %d tweets", name, len(parts.train))
        start = time.perf_counter()
        curves = fit(parts, config, folder)
        mlflow.log_metric("train_seconds", time.perf_counter() - start)
        _log_curves(curves)
        info = log_model(family, folder, name)
        # Evaluate the logged model, exactly what will be served, not the in-memory one.
        model = mlflow.pyfunc.load_model(info.model_uri)
        metrics, probs = evaluate.evaluate(model.predict, sets)
        metrics |= evaluate.latency_ms(model.predict, parts.test["text"].tolist())
        mlflow.log_metrics(metrics)
        for set_name, set_probs in probs.items():
            fig = evaluate.confusion_figure(sets[set_name]["label"].to_numpy(), set_probs, f"{name}: {set_name}")
            mlflow.log_figure(fig, f"confusion_{set_name}.png")
        mlflow.log_table(parts.test.assign(prob_positive=probs["test"]), "predictions_test.json")
    model_version = str(info.registered_model_version)
    evaluation = Evaluation(dataset, bool(sample), fingerprint(parts.test), metrics["test_accuracy"])
    decision = promote_if_better(name, model_version, evaluation, parts.test)
    bento = import_to_bento(name, model_version) if to_bento else None
    log.info("%s: test accuracy %.4f, run %s", name, metrics["test_accuracy"], active.info.run_id)
    return TrainedModel(
        name, model_version, active.info.run_id, metrics, decision.promoted, str(bento.tag) if bento else None
    )


def main(family: str, config_type: type, fit: FitFn, argv: list[str] | None = None) -> TrainedModel:
    """Command line for one trainer: its config fields become flags, plus the data options."""
    parser = argparse.ArgumentParser(description=f"Train the {family} tweet sentiment model.")
    parser.add_argument("--dataset", default="airline", help="airline, sentiment140, or a CSV with text,label")
    parser.add_argument("--sample", type=int, help="use a stratified sample of this many tweets")
    parser.add_argument(
        "--with-feedback", action="store_true", help="add the labelled feedback of the feedback store to training"
    )
    parser.add_argument("--no-bento", action="store_true", help="stop after the MLflow registry")
    for field in fields(config_type):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    args = parser.parse_args(argv)
    config = config_type(**{f.name: getattr(args, f.name) for f in fields(config_type)})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(family, config.model_name, config, fit, args.dataset, args.sample, args.with_feedback, not args.no_bento)
