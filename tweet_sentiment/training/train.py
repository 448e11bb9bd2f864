"""The training flow all three trainers share: data, MLflow run, logged model, evaluation, registry, BentoML."""

import argparse
import logging
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

import tweet_model
from tweet_model import DECISION_CUT
from tweet_model.pyfunc import EXAMPLE_TWEETS
from tweet_model.runtime import ONNX_MODEL
from tweet_model.text import clean_tweets
from tweet_sentiment.core.config import SEED
from tweet_sentiment.core.feedback import FeedbackStore
from tweet_sentiment.core.french import apertium_installed
from tweet_sentiment.core.models import MODEL_CARD, import_to_bento, model_label
from tweet_sentiment.lifecycle import behaviour, evaluate, french_routes, model_card
from tweet_sentiment.lifecycle.promotion import Evaluation, fingerprint, promote_if_better
from tweet_sentiment.lifecycle.tracking import setup_mlflow
from tweet_sentiment.training import data, logreg, lstm, transformer
from tweet_sentiment.training.distil import distil
from tweet_sentiment.training.family import ModelFamily, Predictor
from tweet_sentiment.training.phrases import PHRASE_SOURCE

log = logging.getLogger(__name__)

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (logreg.FAMILY, lstm.FAMILY, transformer.FAMILY)}
MODEL_CODE = Path(tweet_model.__file__).resolve().parent  # all the code a logged model carries
# What the pyfunc needs whatever the family; each family adds its runtime's packages.
BASE_REQUIREMENTS = ("mlflow-skinny", "numpy", "pandas")
EXPORT_TOLERANCE = 1e-4  # max |P(positive) exported - native| on the validation split
INT8_TOLERANCE = 0.005  # an int8 copy is served if its TweetEval val balanced accuracy and AUC are this close


class ExportMismatch(RuntimeError):
    """The exported model does not reproduce the native one."""


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


def predict_in_batches(predictor: Predictor, texts: list[str], size: int = 256) -> np.ndarray:
    return np.concatenate([predictor.predict_proba(texts[i : i + size]) for i in range(0, len(texts), size)])


def export_checked(family: ModelFamily, config: Any, native: Path, served: Path, validation: pd.DataFrame) -> float:
    """Export the native model for its runtime, then check both agree on the validation split; returns the
    largest difference in P(positive), or raises ExportMismatch with it."""
    if family.export is None:  # served as trained
        shutil.copytree(native, served, dirs_exist_ok=True)
        return 0.0
    family.export(native, served, config)
    texts, settings = clean_tweets(validation["text"].tolist()), family.predictor_settings(config)
    expected = predict_in_batches(family.native(native, **settings), texts)
    exported = predict_in_batches(family.runtime(served, **settings), texts)
    gap = float(np.max(np.abs(expected - exported)))
    if gap > EXPORT_TOLERANCE:
        raise ExportMismatch(
            f"the {family.name} export differs from the native model by up to {gap:.2e} in P(positive) on "
            f"{len(texts)} validation tweets (tolerance {EXPORT_TOLERANCE:g}): not logged"
        )
    return gap


def choose_precision(
    family: ModelFamily, config: Any, served: Path, selection: pd.DataFrame
) -> tuple[dict[str, Any], dict[str, float]]:
    """The runtime settings to log, and the metrics of the choice: an int8 copy, where the family makes one,
    replaces the float model only if its balanced accuracy and AUC on ``selection`` (TweetEval val) stay within
    INT8_TOLERANCE of the float model's, each at its own balanced threshold: each is served re-centred on its own
    threshold, which absorbs a shift of P(positive) as a whole; what must hold is how well it separates the
    classes. Only the chosen file stays in the served folder."""
    settings = family.predictor_settings(config)
    if family.quantize is None:
        return settings, {}
    int8_file = family.quantize(served)
    texts, labels = clean_tweets(selection["text"].tolist()), selection["label"].to_numpy()
    candidates = {"float": settings, "int8": settings | {"model_file": int8_file}}

    def scored(options: dict[str, Any]) -> dict[str, float]:
        probs = predict_in_batches(family.runtime(served, **options), texts)
        found = evaluate.scores(labels, probs, evaluate.balanced_threshold(labels, probs))
        return {"balanced_accuracy": (found["recall"] + found["specificity"]) / 2, "roc_auc": found["roc_auc"]}

    scores = {name: scored(options) for name, options in candidates.items()}
    int8 = all(abs(scores["float"][m] - scores["int8"][m]) <= INT8_TOLERANCE for m in scores["float"])
    (served / (ONNX_MODEL if int8 else int8_file)).unlink()
    metrics = {f"selection_{name}_{m}": value for name in scores for m, value in scores[name].items()}
    return candidates["int8" if int8 else "float"], metrics | {"served_int8": float(int8)}


def decision_threshold(family: ModelFamily, settings: dict[str, Any], served: Path, selection: pd.DataFrame) -> float:
    """The threshold on the served model's P(positive) with the best balanced accuracy, averaged over the sources
    of the selection set (clean validation labels): chosen like any hyper-parameter, on validation data only."""
    probs = predict_in_batches(family.runtime(served, **settings), clean_tweets(selection["text"].tolist()))
    return evaluate.balanced_threshold(selection["label"].to_numpy(), probs, selection["source"].to_numpy())


def log_model(
    family: ModelFamily, settings: dict[str, Any], served: Path, name: str, threshold: float
) -> mlflow.models.model.ModelInfo:
    """Log the served model in ``served`` as the shared pyfunc (raw tweets in) and register it as ``name``."""
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=MODEL_CODE / "mlflow_model.py",
        artifacts={"model": str(served)},
        model_config={"family": family.name, "predictor": settings, "threshold": threshold},
        code_paths=[str(MODEL_CODE)],
        input_example=EXAMPLE_TWEETS,
        pip_requirements=[f"{p}=={version(p)}" for p in dict.fromkeys([*BASE_REQUIREMENTS, *family.requirements])],
        registered_model_name=name,
    )


def _log_curves(curves: dict[str, list[float]]) -> None:
    for key, values in curves.items():
        for step, value in enumerate(values):
            mlflow.log_metric(f"curve_{key}", value, step=step)
    if curves:
        mlflow.log_figure(evaluate.curves_figure(curves), "training_curves.png")


@dataclass(frozen=True)
class TrainingData:
    parts: data.Split  # what the model is fitted on (validation: internal + TweetEval val)
    sets: dict[str, pd.DataFrame]  # what it is evaluated on, by name
    params: dict[str, Any]  # what describes it, for MLflow
    feedback: pd.DataFrame | None


@dataclass(frozen=True)
class DataOptions:
    """What a model is trained on: the trainer's data flags."""

    dataset: str = "airline"
    sample: int | None = None
    with_feedback: bool = False
    teacher: str | None = None
    agreeing_only: bool = False
    phrases: bool = False


def prepare_data(options: DataOptions) -> TrainingData:
    """Load, deduplicate and split the dataset; add feedback, relabel by a teacher; name the evaluation sets."""
    dataset, sample = options.dataset, options.sample
    parts = data.split(data.load_dataset(dataset, sample))
    externals = {n: data.load_external(n) for n in data.EXTERNAL_TEST_SETS}
    general_val = data.load_tweeteval_val()  # for model selection (early stopping) only
    params: dict[str, Any] = asdict(options) | {"seed": SEED}
    feedback = None
    if options.with_feedback:
        held_out = [parts.val, parts.test, general_val, *externals.values()]
        parts, feedback = data.add_feedback(parts, pd.DataFrame(FeedbackStore().labelled()), held_out)
    if options.teacher:
        parts, params["teacher"], params["distilled_rows"] = distil(
            parts, options.teacher, options.agreeing_only, options.phrases
        )
        params["phrase_rows"] = int((parts.train["source"] == PHRASE_SOURCE).sum())
    params["feedback_rows"] = 0 if feedback is None else len(feedback)
    params |= {"train_rows": len(parts.train), "val_rows": len(parts.val), "test_rows": len(parts.test)}
    # A sampled (quick) run evaluates on equally small samples of the external sets.
    sets = {"val": parts.val, "test": parts.test, "tweeteval_val": data.subsample(general_val, sample)}
    if parts.test["source"].nunique() > 1:  # each source's share of the held-out split, e.g. test_airline
        sets |= {f"test_{source}": frame for source, frame in parts.test.groupby("source")}
    sets |= {name: data.subsample(frame, sample) for name, frame in externals.items()}
    # Early stopping and per-epoch curves on clean labels only: the internal validation split less its
    # noisy-labelled sources, and TweetEval val.
    selection = pd.concat([parts.val[~data.noisy(parts.val)], general_val], ignore_index=True)
    fit_parts = data.Split(parts.train, selection, parts.test)
    return TrainingData(fit_parts, sets, params, feedback)


def promotion_evaluation(
    dataset: str, sample: int | None, test: pd.DataFrame, probs: np.ndarray
) -> tuple[Evaluation, pd.DataFrame]:
    """What versions are compared on: the held-out tweets with clean labels (all of them when every
    source is noisy), since emoticon-derived labels would reward agreeing with their noise."""
    noisy = data.noisy(test).to_numpy()
    clean = np.ones_like(noisy) if noisy.all() else ~noisy
    accuracy = float(((probs[clean] >= DECISION_CUT).astype(int) == test["label"].to_numpy()[clean]).mean())
    return Evaluation(dataset, bool(sample), fingerprint(test[clean]), accuracy), test[clean]


def run(family: ModelFamily, config: Any, options: DataOptions, to_bento: bool = True) -> TrainedModel:
    """Train one model and take it all the way from data to the BentoML store."""
    setup_mlflow()
    dataset, sample = options.dataset, options.sample
    prepared = prepare_data(options)
    parts, sets, name = prepared.parts, prepared.sets, config.model_name
    with mlflow.start_run(run_name=name) as active, tempfile.TemporaryDirectory() as tmp:
        native, served = Path(tmp) / "native", Path(tmp) / "served"
        native.mkdir()
        served.mkdir()
        mlflow.set_tags({"family": family.name, "registered_model": name})
        mlflow.log_params(asdict(config) | prepared.params)
        mlflow.log_input(mlflow.data.from_pandas(parts.train, name=f"{dataset}-train"), context="training")
        if prepared.feedback is not None:
            mlflow.log_input(mlflow.data.from_pandas(prepared.feedback, name="feedback"), context="training")
            mlflow.log_table(prepared.feedback, "feedback_train.json")  # exactly which corrections went in
        vocabulary = Counter(token for tweet in clean_tweets(parts.train["text"].tolist()) for token in tweet.split())
        mlflow.log_text("\n".join(f"{t}\t{c}" for t, c in vocabulary.most_common()), "training_vocabulary.tsv")
        log.info("training %s on %d tweets", name, len(parts.train))
        start = time.perf_counter()
        curves = family.fit(parts, config, native)
        mlflow.log_metric("train_seconds", time.perf_counter() - start)
        _log_curves(curves)
        mlflow.log_artifacts(str(native), "native_model")  # what was trained, beside the served export
        mlflow.log_metric("export_max_abs_diff", export_checked(family, config, native, served, parts.val))
        settings, precision_metrics = choose_precision(family, config, served, sets["tweeteval_val"])
        mlflow.log_metrics(precision_metrics)
        threshold = decision_threshold(family, settings, served, parts.val)
        mlflow.log_metric("decision_threshold", threshold)
        info = log_model(family, settings, served, name, threshold)
        # Evaluate the logged model, exactly what will be served, not the in-memory one.
        model = mlflow.pyfunc.load_model(info.model_uri)
        metrics, probs = evaluate.evaluate(model.predict, sets)
        metrics |= evaluate.latency_ms(model.predict, parts.test["text"].tolist())
        metrics |= {f"behaviour_{c}": rate for c, rate in behaviour.pass_rates(model.predict).items()}
        if apertium_installed():  # decides whether servers answer French tweets with this version (core/french.py)
            metrics |= french_routes.served_route_metrics(model.predict)
        else:
            log.warning("Apertium is not installed: French tweets will get this version's English answer, flagged")
        mlflow.log_metrics(metrics)
        for set_name, set_probs in probs.items():
            fig = evaluate.confusion_figure(sets[set_name]["label"].to_numpy(), set_probs, f"{name}: {set_name}")
            mlflow.log_figure(fig, f"confusion_{set_name}.png")
        # `noisy`: the model card leaves emoticon-labelled rows out of its mistakes (their "mistakes" are noise).
        predictions = parts.test.assign(prob_positive=probs["test"], noisy=data.noisy(parts.test))
        mlflow.log_table(predictions, "predictions_test.json")
        clean_test = parts.test.loc[~data.noisy(parts.test), "text"].tolist()  # the card's words, on clean labels
        explain = model.unwrap_python_model().explain
        mlflow.log_table(
            model_card.word_effects(explain, clean_test or parts.test["text"].tolist()), model_card.WORD_EFFECTS
        )
        mlflow.log_text(model_card.for_version(name, str(info.registered_model_version)), MODEL_CARD)
    model_version = str(info.registered_model_version)
    evaluation, promotion_test = promotion_evaluation(dataset, sample, parts.test, probs["test"])
    decision = promote_if_better(name, model_version, evaluation, promotion_test)
    bento = import_to_bento(name, model_version) if to_bento else None
    log.info("%s: test accuracy %.4f, run %s", name, metrics["test_accuracy"], active.info.run_id)
    return TrainedModel(
        name, model_version, active.info.run_id, metrics, decision.promoted, str(bento.tag) if bento else None
    )


def main(family: ModelFamily, argv: list[str] | None = None) -> TrainedModel:
    """Command line for one trainer: its config fields become flags, plus the data options."""
    config_type = family.config
    parser = argparse.ArgumentParser(description=f"Train the {family.name} tweet sentiment model.")
    parser.add_argument(
        "--dataset",
        default="airline",
        help="airline, sentiment140, a CSV with text,label, or several joined by +; NAME:N samples N of a part",
    )
    parser.add_argument("--teacher", help="relabel noisy sources with this model, e.g. tweet-minilm@champion")
    parser.add_argument(
        "--agreeing-only", action="store_true", help="with --teacher: drop the noisy rows whose label it contradicts"
    )
    parser.add_argument(
        "--phrases", action="store_true", help="with --teacher: add phrases of the training tweets it scores as rows"
    )
    parser.add_argument("--sample", type=int, help="use a stratified sample of this many tweets")
    parser.add_argument(
        "--with-feedback", action="store_true", help="add the labelled feedback of the feedback store to training"
    )
    parser.add_argument("--no-bento", action="store_true", help="stop after the MLflow registry")
    for field in fields(config_type):
        flag, default = f"--{field.name.replace('_', '-')}", field.default
        if isinstance(default, bool):  # --balance-classes / --no-balance-classes
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    args = parser.parse_args(argv)
    config = config_type(**{f.name: getattr(args, f.name) for f in fields(config_type)})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (args.agreeing_only or args.phrases) and not args.teacher:
        parser.error("--agreeing-only and --phrases need --teacher")
    options = DataOptions(args.dataset, args.sample, args.with_feedback, args.teacher, args.agreeing_only, args.phrases)
    return run(family, config, options, not args.no_bento)
