"""French tweets, answered in French: Apertium translates them offline (French -> Spanish -> English) for the
English models, or Pattern's French lexicon (textblob-fr) scores them as they are.

Apertium is Debian's rule-based translator (`apertium`, `apertium-fr-es`, `apertium-eng-spa`; the language data
ships in the packages, nothing is downloaded). There is no direct French-English pair, hence the pivot.
"""

import shutil
import subprocess

PIVOT = ("fr-es", "spa-eng")  # Apertium modes, applied in order
TRANSLATE_TIMEOUT_S = 60


class TranslationUnavailable(RuntimeError):
    """Apertium or one of its language pairs is not installed; the message says which Debian packages to add."""


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
