"""The evaluation helpers: scores at a threshold and the threshold chosen on validation data."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from tweet_sentiment.lifecycle.evaluate import balanced_threshold, scores


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


def test_balanced_threshold_weighs_each_source_alike_whatever_its_size_and_class_mix():
    rng = np.random.default_rng(0)
    # Airline-like: mostly negatives, easy. TweetEval-like: mostly positives, mild, close to the negatives.
    groups = [("easy", 0, 0.1, 0.05, 900), ("easy", 1, 0.6, 0.1, 100), ("hard", 0, 0.45, 0.1, 100)]
    groups += [("hard", 1, 0.55, 0.1, 900)]
    sources = np.concatenate([[source] * n for source, _, _, _, n in groups])
    labels = np.concatenate([[label] * n for _, label, _, _, n in groups])
    probs = np.clip(np.concatenate([rng.normal(mean, sd, n) for _, _, mean, sd, n in groups]), 0.001, 0.999)

    def mean_balanced_accuracy(cut: float) -> float:
        by_source = [balanced_accuracy_score(labels[sources == s], probs[sources == s] >= cut) for s in set(sources)]
        return float(np.mean(by_source))

    threshold = balanced_threshold(labels, probs, sources)
    assert mean_balanced_accuracy(threshold) == pytest.approx(max(mean_balanced_accuracy(t) for t in np.unique(probs)))
    pooled = balanced_threshold(labels, probs)  # the many easy negatives let the cut slide under the hard ones
    assert pooled < threshold and mean_balanced_accuracy(pooled) < mean_balanced_accuracy(threshold) - 0.02


def test_recentring_keeps_every_tweet_on_its_side_of_the_cut_and_its_rank():
    from tweet_model.pyfunc import recentre

    rng = np.random.default_rng(1)
    probs = np.sort(np.concatenate([rng.uniform(0, 1, 2000), rng.uniform(0, 1, 2000).astype(np.float32)]))
    for threshold in probs[::97]:  # cuts that are scores, as balanced_threshold picks them
        moved = recentre(probs, float(threshold))
        assert ((moved >= 0.5) == (probs >= threshold)).all()
        assert np.all(np.diff(moved) >= 0)
