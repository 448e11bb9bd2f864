"""Phrases cut from the training tweets, for a teacher to score: phrase-level targets.

Socher et al.'s sentiment treebank labels the phrases of each sentence, so a model sees how "no" turns "problems at
all"; here the teacher labels them. Two sets, none equal to a training tweet: the phrases that begin with a
negation and run one to four tokens past it, and phrases of two to four tokens around the words that lean most to one
label ("problem solved", "thanks for nothing"). docs/training.md has the experiments that chose them.
"""

from collections import Counter

import numpy as np

from tweet_model.text import clean_tweets

PHRASE_SOURCE = "phrases"  # their rows' source in the training split
NEGATORS = frozenset({"no", "not", "never", "nothing", "zero", "without", "none", "nobody", "nor", "neither"})
LONGEST = 4  # tokens past a negation; tokens in a leaning phrase
LEANING_WORDS = 300  # of each label
LEANING_PHRASES = 60_000


def negation_phrases(tweets: list[str]) -> list[str]:
    """The phrases of cleaned ``tweets`` that begin with a negation ("no problems at all", "did n't disappoint")."""
    phrases = set()
    for tweet in tweets:
        tokens = tweet.split()
        for i, token in enumerate(tokens):
            if token == "n't" and i > 0:
                start = i - 1
            elif token in NEGATORS:
                start = i
            else:
                continue
            for end in range(i + 2, min(i + 1 + LONGEST, len(tokens)) + 1):
                phrases.add(" ".join(tokens[start:end]))
    return sorted(phrases - set(tweets))


def leaning_words(tweets: list[str], labels: list[int], min_count: int = 20) -> set[str]:
    """The words that lean most to each label: smoothed log-odds of the cleaned ``tweets`` holding them."""
    counts = {label: Counter() for label in (0, 1)}
    for tweet, label in zip(tweets, labels, strict=True):
        counts[int(label)].update(set(tweet.split()))
    totals = {label: sum(c.values()) for label, c in counts.items()}
    odds = {
        word: np.log((counts[0][word] + 1) / totals[0]) - np.log((counts[1][word] + 1) / totals[1])
        for word, count in (counts[0] + counts[1]).items()
        if count >= min_count and word.isalpha() and word not in NEGATORS
    }
    ranked = sorted(odds, key=odds.get)
    return set(ranked[:LEANING_WORDS]) | set(ranked[-LEANING_WORDS:])


def leaning_phrases(tweets: list[str], labels: list[int], size: int = LEANING_PHRASES) -> list[str]:
    """``size`` phrases of cleaned ``tweets`` that hold a label-leaning word, drawn at random (seeded)."""
    words = leaning_words(tweets, labels)
    phrases = set()
    for tweet in tweets:
        tokens = tweet.split()
        for i, token in enumerate(tokens):
            if token in words:
                for start in range(max(0, i - LONGEST + 1), i + 1):
                    for end in range(max(start + 2, i + 1), min(start + LONGEST, len(tokens)) + 1):
                        phrases.add(" ".join(tokens[start:end]))
    phrases = sorted(phrases - set(tweets))
    chosen = np.random.default_rng(42).choice(len(phrases), size=min(size, len(phrases)), replace=False)
    return [phrases[i] for i in sorted(chosen)]


def phrase_sets(texts: list[str], labels: list[int]) -> tuple[list[str], list[str]]:
    """The negation phrases of the training tweets, and the label-leaning phrases that are not among them: two
    sets, so that each one's teacher scores are cached apart."""
    tweets = clean_tweets(texts)
    negation = negation_phrases(tweets)
    leaning = sorted(set(leaning_phrases(tweets, labels)) - set(negation))
    return negation, leaning
