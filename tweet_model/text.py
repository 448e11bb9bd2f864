"""Tweet cleaning shared by every model, so training and serving see the same text."""

import html
import re

URL = re.compile(r"https?://\S+|www\.\S+")
MENTION = re.compile(r"@\w+")
REPEATS = re.compile(r"(\w)\1\1+")  # "soooo" -> "soo"
EMOJI = "\U0001f300-\U0001faff\u2600-\u27bf"
NEGATION = re.compile(r"n't\b")  # GloVe splits "don't" into "do n't"
# Words first, the commonest token (only "n't" must come before them); a change here must keep the tokens the
# models were trained with (tests/unit/test_text.py compares with the first patterns).
TOKEN = re.compile(rf"n't|[a-z0-9]+|<url>|<user>|'[a-z]+|[!?]|[:;=]-?[()dp]|[{EMOJI}]")


def clean_tweet(text: str) -> str:
    """Lower-case a raw tweet and return its tokens joined by single spaces.

    URLs become ``<url>``, mentions ``<user>``; hashtags keep their word; ``!``, ``?`` and
    simple emoticons and emoji are kept as tokens since they carry sentiment.
    """
    text = html.unescape(text).lower()
    text = URL.sub(" <url> ", text)
    text = MENTION.sub(" <user> ", text)
    text = REPEATS.sub(r"\1\1", text)
    text = NEGATION.sub(" n't", text.replace("\u2019", "'"))
    return " ".join(TOKEN.findall(text))


def clean_tweets(texts: list[str]) -> list[str]:
    """Clean a list of raw tweets."""
    return [clean_tweet(t) for t in texts]
