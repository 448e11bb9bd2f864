"""French tweets answered through English: Apertium's offline translation scored by the English model, averaged
with Pattern's French lexicon (textblob-fr). The translation garbles slang and negations, the lexicon misses what
no word of it carries: they err on different tweets. This route was chosen on the French set's validation split
among those ``python -m train.french`` compares (benchmarks/results/FRENCH.md).

A model answers French tweets this way only where its own accuracy on the French set's test split, measured
when it was trained (or by ``python -m train.french``) and carried by its BentoML import, reaches
TWEETS_FRENCH_MIN_ACCURACY, and Apertium is installed; else French tweets keep the English model's answer and a
warning. The server, the shadow challenger and the Spark scorer all answer French tweets by ``route``. Pure
functions over numpy and the language identifier: Spark's executors import this module too.

Apertium is Debian's rule-based translator (`apertium`, `apertium-fr-es`, `apertium-eng-spa`; the language data
ships in the packages, nothing is downloaded). It has no French-English pair, hence the Spanish pivot.
"""

import functools
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from tweet_sentiment.core.language import detect_languages

FRENCH = "fr"
ROUTE_MARK = "+fr"  # the `model` of an answer the route gave ends with it: tweet-lstm/3@champion+fr
ACCURACY_METRIC = "french_test_accuracy"  # the model's run metric the server reads
PIVOT = ("fr-es", "spa-eng")  # Apertium modes, applied in order
TRANSLATE_TIMEOUT_S = 60

PredictProba = Callable[[list[str]], Sequence[float]]


class TranslationUnavailable(RuntimeError):
    """Apertium or one of its language pairs is not installed, or it failed; the message says what to do."""


@functools.cache
def apertium_installed() -> bool:
    """True when the apertium command and both pairs of the pivot are installed."""
    if shutil.which("apertium") is None:
        return False
    modes = subprocess.run(["apertium", "-l"], capture_output=True, text=True, check=False).stdout.split()
    return all(mode in modes for mode in PIVOT)


def translate_to_english(texts: list[str]) -> list[str]:
    """Each French tweet in English, in order: one Apertium pipeline for the whole list, a line a tweet."""
    if not texts:
        return []
    if not apertium_installed():
        raise TranslationUnavailable(
            "French translation needs Apertium: apt-get install apertium apertium-fr-es apertium-eng-spa"
        )
    text = "\n".join(" ".join(tweet.split()) for tweet in texts) + "\n"  # a tweet's own line breaks become spaces
    for mode in PIVOT:  # -u: unknown words as they are, without Apertium's * marks
        step = subprocess.run(
            ["apertium", "-u", mode], input=text, capture_output=True, text=True, timeout=TRANSLATE_TIMEOUT_S
        )
        if step.returncode != 0:
            raise TranslationUnavailable(f"apertium {mode} failed: {step.stderr.strip()[:300]}")
        text = step.stdout
    lines = text.rstrip("\n").split("\n")
    if len(lines) != len(texts):
        raise TranslationUnavailable(f"apertium returned {len(lines)} lines for {len(texts)} tweets")
    return lines


@functools.cache
def _pattern() -> tuple:
    from textblob import TextBlob
    from textblob_fr import PatternAnalyzer, PatternTagger

    return TextBlob, PatternTagger(), PatternAnalyzer()


def lexicon(texts: list[str]) -> np.ndarray:
    """Pattern's French lexicon (textblob-fr): polarity in [-1, 1] mapped to [0, 1]."""
    blob, tagger, analyzer = _pattern()
    return np.array([(blob(t, pos_tagger=tagger, analyzer=analyzer).sentiment[0] + 1) / 2 for t in texts])


def route(predict: PredictProba, texts: list[str]) -> np.ndarray:
    """P(positive) of French tweets: the mean of the English model on Apertium's English and of the lexicon."""
    if not texts:
        return np.empty(0)
    return (np.asarray(predict(translate_to_english(texts)), dtype=float) + lexicon(texts)) / 2


def answers_french(metrics: Mapping[str, float], min_accuracy: float) -> bool:
    """Whether a version whose metrics (its run's, which its BentoML import carries) are ``metrics`` answers
    French tweets by the route: its French test accuracy reaches ``min_accuracy``, and Apertium is here."""
    accuracy = metrics.get(ACCURACY_METRIC)
    return accuracy is not None and accuracy >= min_accuracy and apertium_installed()


def reroute(
    predict: PredictProba, tweets: list[str], languages: Sequence[str | None], probs: Sequence[float]
) -> tuple[list[float], list[bool]]:
    """``probs`` with each French tweet's replaced by the route's, and which were; TranslationUnavailable (or
    subprocess.TimeoutExpired) when Apertium fails."""
    routed = [language == FRENCH for language in languages]
    probs = [float(p) for p in probs]
    french = [i for i, is_french in enumerate(routed) if is_french]
    for i, p in zip(french, route(predict, [tweets[i] for i in french]), strict=True):
        probs[i] = float(p)
    return probs, routed


def answering_french(predict: PredictProba) -> PredictProba:
    """``predict`` answering French tweets by the route, identifying languages itself (the shadow challenger's
    process: the server's identification is not sent to it)."""

    def predict_any(tweets: list[str]) -> list[float]:
        return reroute(predict, tweets, detect_languages(tweets), predict(tweets))[0]

    return predict_any
