"""Brands named in tweets: the configuration file, its mistakes, and matching by whole word in any language."""

import pytest

from tweet_sentiment.core.brands import MAX_BRANDS, BrandConfigError, Brands, count_by_brand
from tweet_sentiment.core.config import ROOT

BRANDS = Brands.parse(
    {
        "United": ["@united", "#unitedairlines", "united airlines"],
        "Air France": ["@airfrance", "air france"],
        "AT&T": ["AT&T", "@att"],
        "Delta": "@delta",
    },
    "test",
)


@pytest.mark.parametrize(
    ("tweet", "named"),
    [
        ("@United lost my bag", ["United"]),
        ("@UNITED!!! again", ["United"]),
        ("flying United Airlines today", ["United"]),
        ("flying united\tairlines today", ["United"]),
        ("reunited with my bag", []),  # not a word of its own
        ("@united_fan says hi", []),  # another account
        ("united we stand", []),  # a keyword of two words needs both
        ("#UnitedAirlines rocks", ["United"]),
        ("J'adore AIR FRANCE !", ["Air France"]),
        ("l'équipage d'Air France était génial", ["Air France"]),
        ("air-france", ["Air France"]),  # punctuation between the words
        ("@delta and @united, both late", ["United", "Delta"]),  # configuration order
        ("my AT&T bill", ["AT&T"]),
        ("", []),
    ],
)
def test_brands_are_matched_case_insensitively_by_whole_word(tweet, named):
    assert BRANDS.match(tweet) == named


def test_names_are_kept_as_configured_and_counted_per_label():
    assert BRANDS.names == ["United", "Air France", "AT&T", "Delta"]
    brands = BRANDS.match_all(["@united late", "@united great", "@delta @united late"])
    assert count_by_brand(brands, ["negative", "positive", "negative"]) == {
        ("United", "negative"): 2,
        ("United", "positive"): 1,
        ("Delta", "negative"): 1,
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (["@united"], "expected a mapping of brand name to its terms"),
        ({"": ["@x"]}, "a brand name must be non-empty text"),
        ({3: ["@x"]}, "a brand name must be non-empty text"),
        ({"United": []}, "'United' needs a list of terms"),
        ({"United": {"a": 1}}, "'United' needs a list of terms"),
        ({"United": ["@"]}, "has the term '@': a term is an @mention, a #hashtag or words"),
        ({"United": [7]}, "has the term 7"),
        ({"United": ["@united"], "Other": ["@UNITED"]}, "the term '@UNITED' names both 'United' and 'Other'"),
        ({f"b{i}": [f"@b{i}"] for i in range(MAX_BRANDS + 1)}, f"at most {MAX_BRANDS}"),
    ],
)
def test_a_bad_configuration_is_refused_naming_the_file_and_the_fault(document, message):
    with pytest.raises(BrandConfigError, match=r"^test: ") as refused:
        Brands.parse(document, "test")
    assert message in str(refused.value)


def test_the_file_is_read_from_the_setting_and_its_faults_named(tmp_path, monkeypatch):
    monkeypatch.setenv("TWEETS_BRANDS_FILE", str(tmp_path / "none.yaml"))
    with pytest.raises(BrandConfigError, match=r"TWEETS_BRANDS_FILE=.*none.yaml: cannot be read"):
        Brands.load()
    (tmp_path / "bad.yaml").write_text("United: [@united\n")
    monkeypatch.setenv("TWEETS_BRANDS_FILE", str(tmp_path / "bad.yaml"))
    with pytest.raises(BrandConfigError, match="not valid YAML"):
        Brands.load()
    monkeypatch.setenv("TWEETS_BRANDS_FILE", "")
    assert not Brands.load() and Brands.load().match("@united") == []
    monkeypatch.delenv("TWEETS_BRANDS_FILE")
    assert Brands.load().names[:2] == ["United", "US Airways"]  # the project's brands.yaml
    assert Brands.load(ROOT / "brands.yaml").match("Merci @AirFrance !") == ["Air France"]
