"""The brands a tweet names, as configured in one YAML file (``TWEETS_BRANDS_FILE``, default ``brands.yaml``).

Each brand is a name and the terms that name it: ``@mentions``, ``#hashtags`` and keywords of one or more words::

    United Airlines: ["@united", "#unitedairlines", "united airlines"]
    Air France: ["@airfrance", "#airfrance", "air france"]

Matching is case-insensitive and by whole word, in any language (``Air France`` in "J'adore AIR FRANCE!"; not
``united`` in "reunited"). A mention or hashtag term matches itself only (``@united``, not ``@united_fan`` or the
word "united"); a keyword matches words, not a mention or hashtag of them. A tweet may name several brands. Brand
names are kept as written: they are the ``brand`` label of the Prometheus series, so only the configuration, never
a client, makes series.

Matching tokenizes each tweet once and looks its words up in a table of first words: its cost does not grow with
the number of brands (a regular expression of every term tries each of them at every character).
"""

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tweet_sentiment.core.config import settings

WORDS = re.compile(r"[@#]?\w+")  # words, mentions and hashtags of any script, lower-cased first (casefold)
MAX_BRANDS = 500  # each costs two series on every server (`brand`, `label`): a bound on /metrics


class BrandConfigError(ValueError):
    """The brands file cannot be used; the message names the file and what is wrong in it."""


def words(text: str) -> tuple[str, ...]:
    return tuple(WORDS.findall(text.casefold()))


@dataclass(frozen=True)
class Brands:
    """The configured brands and their terms; ``match`` names the brands of each tweet."""

    terms: dict[str, tuple[str, ...]]  # brand name, as configured -> its terms

    def __post_init__(self) -> None:
        table: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for brand, terms in self.terms.items():
            for term in terms:
                first, *rest = words(term)
                table.setdefault(first, []).append((tuple(rest), brand))
        object.__setattr__(self, "_by_first_word", table)

    @property
    def names(self) -> list[str]:
        return list(self.terms)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def match(self, tweet: str) -> list[str]:
        """The brands ``tweet`` names, in configuration order, each once."""
        if not self.terms:
            return []
        tokens = words(tweet)
        found = set()
        for i, token in enumerate(tokens):
            for rest, brand in self._by_first_word.get(token, ()):
                if not rest or tokens[i + 1 : i + 1 + len(rest)] == rest:
                    found.add(brand)
        return [brand for brand in self.terms if brand in found] if len(found) > 1 else list(found)

    def match_all(self, tweets: Iterable[str]) -> list[list[str]]:
        return [self.match(tweet) for tweet in tweets]

    @classmethod
    def parse(cls, document: object, source: str) -> "Brands":
        """Brands from the YAML document of ``source``; BrandConfigError says what is wrong and where."""
        if document is None:
            return cls({})
        if not isinstance(document, dict):
            raise BrandConfigError(f"{source}: expected a mapping of brand name to its terms, got {document!r:.80}")
        if len(document) > MAX_BRANDS:
            raise BrandConfigError(f"{source}: {len(document)} brands, at most {MAX_BRANDS} (two series each)")
        terms: dict[str, tuple[str, ...]] = {}
        owner: dict[tuple[str, ...], str] = {}
        for name, listed in document.items():
            if not isinstance(name, str) or not name.strip():
                raise BrandConfigError(f"{source}: a brand name must be non-empty text, got {name!r}")
            if isinstance(listed, str):
                listed = [listed]
            if not isinstance(listed, list) or not listed:
                raise BrandConfigError(f"{source}: brand {name!r} needs a list of terms (@mention, #hashtag, words)")
            for term in listed:
                key = words(term) if isinstance(term, str) else ()
                if not key:  # punctuation between words is ignored: "AT&T" is the words "at" "t"
                    raise BrandConfigError(
                        f"{source}: brand {name!r} has the term {term!r}: a term is an @mention, a #hashtag or words"
                    )
                if key in owner and owner[key] != name:
                    raise BrandConfigError(f"{source}: the term {term!r} names both {owner[key]!r} and {name!r}")
                owner[key] = name
            terms[name] = tuple(listed)
        return cls(terms)

    @classmethod
    def load(cls, path: Path | None = None) -> "Brands":
        """The brands of ``path`` (default: the setting); an unset setting means no brands."""
        path = path if path is not None else settings().brands_file
        if path is None:
            return cls({})
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise BrandConfigError(f"TWEETS_BRANDS_FILE={path}: cannot be read ({error.strerror})") from None
        except yaml.YAMLError as error:
            raise BrandConfigError(f"TWEETS_BRANDS_FILE={path}: not valid YAML: {error}") from None
        return cls.parse(document, f"TWEETS_BRANDS_FILE={path}")


def count_by_brand(brands: list[list[str]], labels: list[str]) -> Counter[tuple[str, str]]:
    """(brand, label) -> tweets, for one model call's answers."""
    return Counter((brand, label) for named, label in zip(brands, labels, strict=True) for brand in named)
