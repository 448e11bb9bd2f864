"""The evaluation helpers: scores at a threshold and the threshold chosen on validation data."""

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from tweet_sentiment.evaluate import balanced_threshold, scores


def _overlapping_classes(negatives: int, positives: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    probs = np.concatenate([rng.uniform(0.0, 0.3, negatives), rng.uniform(0.2, 0.5, positives)])
    return np.array([0] * negatives + [1] * positives), probs


def test_balanced_threshold_has_the_best_mean_recall_of_every_cut():
    labels, probs = _overlapping_classes(900, 100)
    threshold = balanced_threshold(labels, probs)
    best = max(balanced_accuracy_score(labels, probs >= t) for t in np.unique(probs))
    assert balanced_accuracy_score(labels, probs >= threshold) == best
    assert 0.2 <= threshold <= 0.3  # where the classes overlap; every P(positive) here is below 0.5
    assert scores(labels, probs, threshold)["accuracy"] > scores(labels, probs)["accuracy"]


def test_balanced_threshold_does_not_follow_the_class_mix():
    labels, probs = _overlapping_classes(900, 100)
    positives = labels == 1  # each positive tweet 81 times: the class mix flips from 9:1 to 1:9
    labels_flipped = np.concatenate([labels, *[labels[positives]] * 80])
    probs_flipped = np.concatenate([probs, *[probs[positives]] * 80])
    assert balanced_threshold(labels_flipped, probs_flipped) == balanced_threshold(labels, probs)
