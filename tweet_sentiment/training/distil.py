"""Distillation (Tang et al. 2019): a teacher model's P(positive) replaces noisy training labels.

The noisy-labelled sources (Sentiment140's emoticon labels) are relabelled by the teacher, usually
the fine-tuned transformer's champion, so a fast student (the LSTM) learns its judgement on many
more tweets. Scores are cached per teacher run and texts, since scoring a transformer over tens of
thousands of tweets takes minutes.
"""

import hashlib
import logging

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from tweet_model import DECISION_CUT
from tweet_sentiment.core.config import settings
from tweet_sentiment.core.models import ModelNotFound, ModelSpec
from tweet_sentiment.training import data
from tweet_sentiment.training.data import Split
from tweet_sentiment.training.phrases import PHRASE_SOURCE, phrase_sets

log = logging.getLogger(__name__)


TEACHER_CHOICE_METRIC = "tweeteval_val_roc_auc"  # a validation set, and a metric its class mix cannot move


def teacher_version(spec: str) -> tuple[str, str]:
    """``name@alias`` or ``name/version`` -> (name, version) in the registry. Several, comma-separated
    (``tweet-minilm@champion,tweet-mpnet@champion``): the one whose training run scored the best TweetEval val
    ROC AUC, never a test set's figure; a candidate that is not registered is left out, with a warning."""
    client = MlflowClient()
    candidates = {}
    for candidate in spec.split(","):
        model = ModelSpec.parse(candidate.strip())
        try:
            version = model.registered_version(client)
        except ModelNotFound as error:
            if "," not in spec:
                raise
            log.warning("teacher candidate %s left out: %s", candidate, error)
            continue
        run = client.get_run(client.get_model_version(model.name, version).run_id)
        candidates[(model.name, version)] = run.data.metrics.get(TEACHER_CHOICE_METRIC, float("-inf"))
    if not candidates:
        raise ModelNotFound(f"none of the teachers {spec!r} is registered")
    chosen = max(candidates, key=candidates.get)
    if len(candidates) > 1:
        scores = ", ".join(f"{name}/{version}: {score:.4f}" for (name, version), score in candidates.items())
        log.info("teacher %s/%s chosen on %s (%s)", *chosen, TEACHER_CHOICE_METRIC, scores)
    return chosen


def teacher_probabilities(name: str, version: str, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """The teacher's P(positive) for each text, from the cache when it scored these texts before."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    run_id = MlflowClient().get_model_version(name, version).run_id  # a new store numbers its versions from 1 again
    cache = settings().cache_dir / "teacher" / f"{name}-v{version}-{run_id[:12]}-{digest}.npy"
    if cache.is_file():
        return np.load(cache)
    from tqdm import tqdm  # a cached teacher needs no progress bar

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    order = np.argsort([len(t) for t in texts])  # similar lengths together: little padding
    probs = np.empty(len(texts))
    for start in tqdm(range(0, len(texts), batch_size), desc=f"teacher {name}/{version}", unit="batch"):
        index = order[start : start + batch_size]
        probs[index] = model.predict([texts[i] for i in index])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, probs)
    return probs


def distil(parts: Split, teacher: str, agreeing_only: bool = False, phrases: bool = False) -> tuple[Split, str, int]:
    """The split with its noisy-labelled training rows relabelled by the teacher: a soft ``target``
    (P(positive)) and the hard ``label`` it rounds to. With ``agreeing_only``, the noisy rows whose own
    label the teacher contradicts are dropped instead (noisy-label filtering: the rows kept have two
    witnesses). With ``phrases``, phrases cut from the training tweets (training/phrases.py) are added as
    rows the teacher scored. Returns the split, the teacher's ``name/version`` and how many noisy rows it labelled."""
    name, version = teacher_version(teacher)
    train = parts.train.assign(target=parts.train["label"].astype(float))
    noisy = data.noisy(train)
    if noisy.any():
        probs = teacher_probabilities(name, version, train.loc[noisy, "text"].tolist())
        labels = (probs >= DECISION_CUT).astype(int)
        contradicted = noisy.copy()
        contradicted[noisy] = labels != train.loc[noisy, "label"].to_numpy()
        train.loc[noisy, "target"], train.loc[noisy, "label"] = probs, labels
        if agreeing_only:
            train = train[~contradicted].reset_index(drop=True)
            log.info("teacher %s/%s contradicts %d noisy labels: rows dropped", name, version, contradicted.sum())
    if phrases:
        sets = phrase_sets(train["text"].tolist(), train["label"].tolist())
        probs = np.concatenate([teacher_probabilities(name, version, texts) for texts in sets])
        rows = pd.DataFrame({"text": [t for texts in sets for t in texts], "target": probs, "source": PHRASE_SOURCE})
        rows["label"] = (probs >= DECISION_CUT).astype(int)
        log.info("%d phrases scored by the teacher, %.3f positive", len(rows), rows["label"].mean())
        train = pd.concat([train, rows], ignore_index=True)
    labelled = int(data.noisy(train).sum())
    log.info("teacher %s/%s labelled %d of %d training tweets", name, version, labelled, len(train))
    return Split(train, parts.val, parts.test), f"{name}/{version}", labelled
