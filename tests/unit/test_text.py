from tweet_model.text import clean_tweet, clean_tweets


def test_mentions_urls_and_entities_are_normalised():
    assert clean_tweet("@united Thanks &amp; see http://t.co/abc !") == "<user> thanks see <url> !"


def test_repeated_letters_negations_and_emoticons():
    assert clean_tweet("Sooooo good :) but I don't care :-(") == "soo good :) but i do n't care :-("
    assert clean_tweet("can’t wait") == "ca n't wait"


def test_emoji_are_kept_and_odd_input_never_fails():
    assert clean_tweet("love it 😍") == "love it 😍"
    assert clean_tweet("\u202e\ufeff\x00") == ""
    assert clean_tweets(["A", "b"]) == ["a", "b"]


def test_language_is_identified_with_confidence_only():
    from tweet_sentiment.core.language import detect_languages, language_warning

    tweets = [
        "@united thanks, the crew was fantastic http://t.co/x #happy",
        "Das Essen war schrecklich und der Service langsam",
        "@united #",
        "ok",  # too short to be sure of
        "Le vol a été annulé,\nje suis très mécontent !",  # a line break inside
    ]
    assert detect_languages(tweets) == ["en", "de", None, None, "fr"]
    assert detect_languages([]) == []
    assert language_warning("en") is None and language_warning(None) is None
    assert "'de', not English" in language_warning("de")
