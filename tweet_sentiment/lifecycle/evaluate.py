"""One evaluation for every model: the metrics, confusion matrices and latency we log."""

import time
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)

from tweet_model import DECISION_CUT
from tweet_sentiment.core.config import LABELS

PredictFn = Callable[[list[str]], list[float]]


def scores(labels: np.ndarray, probs: np.ndarray, threshold: float = DECISION_CUT) -> dict[str, float]:
    """Accuracy, F1 (positive class), ROC AUC, specificity (recall on negative tweets) and recall (on positive ones)."""
    predicted = (probs >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    return {
        "accuracy": accuracy_score(labels, predicted),
        "f1": f1_score(labels, predicted, zero_division=0),
        "roc_auc": roc_auc_score(labels, probs) if len(set(labels)) == 2 else float("nan"),
        "specificity": tn / (tn + fp) if tn + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
    }


def balanced_threshold(labels: np.ndarray, probs: np.ndarray, sources: np.ndarray | None = None) -> float:
    """The threshold on P(positive) with the best balanced accuracy (the mean recall of both classes, which
    a set's class mix cannot move), averaged over ``sources``: pooled, a domain whose negatives are easy
    (airline complaints) would set the cut for another whose positives are hard (TweetEval's mild ones)."""
    sources = np.zeros(len(labels)) if sources is None else np.asarray(sources)
    candidates = np.unique(probs)
    score = np.zeros(len(candidates))
    for source in np.unique(sources):
        for label in (0, 1):
            ranked = np.sort(probs[(sources == source) & (labels == label)])
            if len(ranked):  # recall of this class at each cut (positive from the cut up)
                below = np.searchsorted(ranked, candidates, side="left") / len(ranked)
                score += below if label == 0 else 1 - below
    return float(np.clip(candidates[np.argmax(score)], 1e-6, 1 - 1e-6))


def confusion_figure(labels: np.ndarray, probs: np.ndarray, title: str) -> plt.Figure:
    """Confusion matrix at the decision cut (the figure is closed for pyplot: log or save it)."""
    fig, ax = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay.from_predictions(
        labels, (probs >= DECISION_CUT).astype(int), display_labels=LABELS, ax=ax, colorbar=False
    )
    ax.set_title(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def curves_figure(curves: dict[str, list[float]]) -> plt.Figure:
    """Training curves (loss, validation metrics) per epoch or step."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, values in curves.items():
        ax.plot(values, label=key)
    ax.set_xlabel("epoch or step")
    ax.legend()
    plt.close(fig)
    return fig


def latency_ms(predict: PredictFn, texts: list[str], batch_size: int = 64, singles: int = 50) -> dict[str, float]:
    """Per-tweet inference time: amortised over batches, and one tweet at a time (median)."""
    predict(texts[:1])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        predict(texts[i : i + batch_size])
    batched = (time.perf_counter() - start) / len(texts)
    single = []
    for text in texts[:singles]:
        start = time.perf_counter()
        predict([text])
        single.append(time.perf_counter() - start)
    return {"ms_per_tweet_batched": batched * 1e3, "ms_per_tweet_single": float(np.median(single)) * 1e3}


def evaluate(predict: PredictFn, sets: dict[str, pd.DataFrame]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Scores on each named set, as ``{set}_{metric}``, and the probabilities per set."""
    metrics, probs = {}, {}
    for name, frame in sets.items():
        probs[name] = np.asarray(predict(frame["text"].tolist()))
        metrics |= {f"{name}_{k}": v for k, v in scores(frame["label"].to_numpy(), probs[name]).items()}
    return metrics, probs
