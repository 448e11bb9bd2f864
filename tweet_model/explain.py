"""Why a label: each word's effect on P(positive), in the model's own output units, deterministic.

A word is a run of non-space characters of the tweet as sent (a mention, a link, an emoji run, "sooooo",
"don't"), with its offsets into that text: ``tweet[start:end]`` is the word, offsets counted in code points
(Python's indices; in JavaScript, ``Array.from(tweet).slice(start, end)``). Cleaning is word by word (what the
model sees of a tweet is what it sees of each word, in order), so each word maps to the tokens it became.

- **occlusion** (the LSTM, the transformer): a word's effect is P(positive) of the tweet minus P(positive) of
  the tweet without that word; the tweet and all its variants go through the model in one call.
- **coefficients** (the logistic regression): exact. The model's log-odds are its intercept plus one term a
  TF-IDF feature, coefficient times weight; a word's term is the sum of its features' terms (an n-gram's split
  evenly between its words). Its effect is P(positive) minus P(positive) with that term taken out of the
  log-odds, every other weight as it is.
"""

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Word:
    text: str
    start: int  # offsets into the tweet, in code points
    end: int


def words(tweet: str) -> list[Word]:
    return [Word(match.group(), match.start(), match.end()) for match in WORD.finditer(tweet)]


def without_each(tweet: str, found: list[Word]) -> list[str]:
    """The tweet with each word left out in turn."""
    return [tweet[: word.start] + tweet[word.end :] for word in found]


@dataclass(frozen=True)
class Explanation:
    prob_positive: float
    method: str  # "occlusion" or "coefficients"
    words: list[Word]
    effects: list[float]  # each word's, in P(positive)

    def contributions(self, scale: float = 1.0) -> list[dict[str, Any]]:
        """The answer's ``contributions``, in text order; ``scale`` for a route that averages the model's P."""
        return [
            {"text": word.text, "start": word.start, "end": word.end, "effect": effect * scale}
            for word, effect in zip(self.words, self.effects, strict=True)
        ]


def by_occlusion(tweets: list[str], predict) -> list[Explanation]:
    """Every tweet and every variant of every tweet through ``predict`` (raw tweets -> P(positive)) in one call."""
    found = [words(tweet) for tweet in tweets]
    texts = [text for tweet, its in zip(tweets, found, strict=True) for text in (tweet, *without_each(tweet, its))]
    probs = np.asarray(predict(texts), dtype=np.float64) if texts else np.zeros(0)
    explanations, at = [], 0
    for its in found:
        full, without = probs[at], probs[at + 1 : at + 1 + len(its)]
        explanations.append(Explanation(float(full), "occlusion", its, (full - without).tolist()))
        at += 1 + len(its)
    return explanations


def sigmoid(log_odds: np.ndarray | float) -> np.ndarray:
    return 1 / (1 + np.exp(-np.asarray(log_odds, dtype=np.float64)))


def by_coefficients(tweets: list[str], pipeline, clean, shift: float) -> list[Explanation]:
    """The TF-IDF + logistic regression ``pipeline``'s exact terms per word; ``clean`` is the model's cleaning of
    one text, ``shift`` the log-odds its P(positive) is re-centred by (the decision threshold's)."""
    vectorizer, classifier = pipeline[0], pipeline[-1]
    coefficients, vocabulary = classifier.coef_[0], vectorizer.vocabulary_
    low, high = vectorizer.ngram_range
    explanations = []
    for tweet in tweets:
        found = words(tweet)
        owner = [i for i, word in enumerate(found) for _ in clean(word.text).split()]  # token -> its word
        tokens = [token for word in found for token in clean(word.text).split()]
        weights = vectorizer.transform([" ".join(tokens)])
        weight = dict(zip(weights.indices, weights.data, strict=True))
        grams = [
            (vocabulary[" ".join(tokens[k : k + n])], owner[k : k + n])
            for n in range(low, high + 1)
            for k in range(len(tokens) - n + 1)
            if " ".join(tokens[k : k + n]) in vocabulary
        ]
        occurrences: dict[int, int] = {}
        for feature, _ in grams:
            occurrences[feature] = occurrences.get(feature, 0) + 1
        terms = np.zeros(len(found))
        for feature, its_words in grams:  # a feature's term, shared by its occurrences, each by its words
            share = coefficients[feature] * weight[feature] / occurrences[feature] / len(its_words)
            for i in its_words:
                terms[i] += share
        log_odds = float(classifier.intercept_[0] + terms.sum()) - shift
        prob = float(sigmoid(log_odds))
        explanations.append(Explanation(prob, "coefficients", found, (prob - sigmoid(log_odds - terms)).tolist()))
    return explanations
