"""French tweets answered through English: Apertium's offline translation scored by the English model, averaged
with Pattern's French lexicon (textblob-fr). The translation garbles slang and negations, the lexicon misses what
no word of it carries: they err on different tweets. This route was chosen on the French set's validation split
among those ``python -m train.french`` compares (benchmarks/results/FRENCH.md).

A model answers French tweets this way only where its own accuracy on the French set's test split, measured
when it was trained (or by ``python -m train.french``) and carried by its BentoML import, reaches
TWEETS_FRENCH_MIN_ACCURACY, and Apertium is installed; else French tweets keep the English model's answer and a
warning. The server, the shadow challenger and the Spark scorer all answer French tweets by ``route``. It needs
numpy, the language identifier and the standard library only: Spark's executors import it too.

Apertium is Debian's rule-based translator (`apertium`, `apertium-fr-es`, `apertium-eng-spa`; the language data
ships in the packages, nothing is downloaded). It has no French-English pair, hence the Spanish pivot.
"""

import contextlib
import functools
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from tweet_sentiment.core.language import detect_languages

FRENCH = "fr"
ROUTE_MARK = "+fr"  # the `model` of an answer the route gave ends with it: tweet-lstm/3@champion+fr
ACCURACY_METRIC = "french_test_accuracy"  # the model's run metric the server reads
PIVOT = ("fr-es", "spa-eng")  # Apertium modes, applied in order
PACKAGES = ("apertium", "apertium-fr-es", "apertium-eng-spa")  # Debian's
TRANSLATE_TIMEOUT_S = 60
CARET_STAND_IN = "\u02c6"  # ˆ, which Apertium passes on as it is

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


class Apertium:
    """French to English through one Apertium pipeline kept running: the pivot's two modes, every program of them
    in null-flush mode (``-z``: a NUL ends a job, and is passed on), so that a call pays its translation (a few ms)
    and not the start of some twenty processes (~0.35 s with the ``apertium`` command). The text is escaped as
    Apertium's stream format wants, as the command's plain-text deformatter does: a test compares the two."""

    SPECIAL = re.compile(r"([\[\]{}$@/\\<>])")  # and ^, which goes as CARET_STAND_IN
    ESCAPED = re.compile(r"\\(.)")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        modes = Path(shutil.which("apertium") or "/usr/bin/apertium").resolve().parents[1] / "share" / "apertium"
        stages = []
        for mode in PIVOT:
            path = modes / "modes" / f"{mode}.mode"
            if not path.is_file():
                raise TranslationUnavailable(f"no Apertium mode {path}: apt-get install {' '.join(PACKAGES)}")
            # $1: the generator's option (-n: unknown words as they are, without * marks); $2: the tagger's.
            command = path.read_text().strip().replace("$1", "-n").replace("$2", "")
            stages += [re.sub(r"^(\S+)", r"\1 -z", stage.strip(), count=1) for stage in command.split("|")]
        # A session of its own: a hung pipeline is killed whole.
        return subprocess.Popen(
            " | ".join(stages), shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
        )

    def translate(self, texts: list[str]) -> list[str]:
        """Each text in English, in order (one line each); TranslationUnavailable if the pipeline fails."""
        # A tweet's line breaks become spaces, a NUL (which ends a job) too; a ^ (a ^^ smile) goes as a character
        # of its own: lrx-proc in null-flush mode hangs on an escaped one.
        lines = (" ".join(text.replace("\0", " ").split()).replace("^", CARET_STAND_IN) for text in texts)
        job = "\n".join(self.SPECIAL.sub(r"\\\1", line) for line in lines) + "\n"
        with self._lock:
            try:
                if self._process is None or self._process.poll() is not None:
                    self._process = self._start()
                output = self._run(self._process, job.encode() + b"\0")
            except (OSError, TimeoutError) as error:
                self.close()
                raise TranslationUnavailable(f"Apertium failed: {type(error).__name__}: {error}") from error
        lines = self.ESCAPED.sub(r"\1", output.decode()).replace(CARET_STAND_IN, "^").rstrip("\n").split("\n")
        if len(lines) != len(texts):
            raise TranslationUnavailable(f"Apertium returned {len(lines)} lines for {len(texts)} tweets")
        return lines

    @staticmethod
    def _run(process: subprocess.Popen, job: bytes) -> bytes:
        process.stdin.write(job)
        process.stdin.flush()
        output, deadline = b"", time.monotonic() + TRANSLATE_TIMEOUT_S
        while not output.endswith(b"\0"):
            if not select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError(f"no translation within {TRANSLATE_TIMEOUT_S} s")
            if not (chunk := os.read(process.stdout.fileno(), 1 << 16)):
                raise OSError(f"the pipeline ended (exit {process.wait()})")
            output += chunk
        return output[:-1]

    def close(self) -> None:
        """End the pipeline (it starts again at the next call): its input closed, each program ends after the one
        before it, and the shell once they all have; one that hangs is killed with the rest of the session."""
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process.stdout.close()
        self._process = None


TRANSLATOR = Apertium()  # one a process: its calls take turns (a job is a few ms)


def translate_to_english(texts: list[str]) -> list[str]:
    """Each French tweet in English, in order: one job of the running Apertium pipeline, a line a tweet."""
    if not texts:
        return []
    if not apertium_installed():
        raise TranslationUnavailable(f"French translation needs Apertium: apt-get install {' '.join(PACKAGES)}")
    return TRANSLATOR.translate(texts)


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
    """``probs`` with each French tweet's replaced by the route's, and which were; TranslationUnavailable when
    Apertium fails."""
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
