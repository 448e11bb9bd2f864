import re

import pandas as pd
import pytest

from tweet_sentiment.training import data


def test_airline_drops_neutral_and_maps_labels():
    frame = data.load_airline()
    assert len(frame) == 11_541  # 9,178 negative + 2,363 positive
    assert frame["label"].sum() == 2_363
    assert list(frame.columns) == ["text", "label"]


def test_sentiment140_is_balanced_and_keeps_unicode_line_separators():
    frame = data.load_sentiment140()
    assert len(frame) == 100_000
    assert frame["label"].mean() == 0.5


@pytest.mark.parametrize(("name", "rows"), [("tweeteval", 6_347), ("sentiment140_manual", 359)])
def test_external_sets_are_binary(name, rows):
    frame = data.load_external(name)
    assert len(frame) == rows
    assert set(frame["label"]) == {0, 1}


def test_split_is_stratified_disjoint_and_reproducible():
    frame = data.load_dataset("airline", sample=2_000)
    first, second = data.split(frame), data.split(frame)
    assert first.test.equals(second.test)
    assert len(first.train) + len(first.val) + len(first.test) == 2_000
    together = pd.concat([first.train, first.val, first.test]).sort_values(["text", "label"], ignore_index=True)
    assert together.equals(frame.sort_values(["text", "label"], ignore_index=True))  # a partition: nothing lost
    for part in (first.train, first.val, first.test):
        assert abs(part["label"].mean() - frame["label"].mean()) < 0.02


def test_user_csv_accepts_names_and_numbers(tmp_path):
    path = tmp_path / "mine.csv"
    pd.DataFrame({"text": ["good", "bad", "fine", "  "], "label": ["Positive", "neg", 1, 0]}).to_csv(path, index=False)
    frame = data.load_dataset(str(path))
    assert frame.to_dict("list") == {"text": ["good", "bad", "fine"], "label": [1, 0, 1], "source": ["mine"] * 3}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text,sentiment\nhello,1\n", "missing column(s) ['label']"),
        ("", "the file is empty"),
        ("text,label\nhello,maybe\n", "unknown labels ['maybe']"),
        ("text,label\n,1\n", "no rows with text"),
    ],
)
def test_bad_csv_gives_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(data.DataError, match=re.escape(message)):
        data.load_csv(path)


def test_missing_file_and_single_class_are_errors(tmp_path):
    with pytest.raises(data.DataError, match="file not found"):
        data.load_csv(tmp_path / "nope.csv")
    with pytest.raises(data.DataError, match="both positive and negative"):
        data.split(pd.DataFrame({"text": ["a", "b", "c"], "label": [1, 1, 1]}))


def test_feedback_joins_training_only_deduplicated_and_never_a_held_out_tweet():
    parts = data.split(data.load_dataset("airline", sample=500))
    external = data.load_external("sentiment140_manual")
    in_train, in_test = parts.train["text"].iloc[0], parts.test["text"].iloc[0]
    feedback = pd.DataFrame(
        {
            "text": ["new tweet one", "NEW tweet   one", "new tweet two", in_train, in_test, external["text"].iloc[0]],
            "label": [0, 1, 1, 1 - int(parts.train["label"].iloc[0]), 1, 1],
        }
    )
    merged, kept = data.add_feedback(parts, feedback, [parts.val, parts.test, external])
    assert list(kept["text"]) == ["NEW tweet   one", "new tweet two", in_train]  # the latest of a duplicate wins
    assert list(kept["label"])[:2] == [1, 1]
    assert len(merged.train) == len(parts.train) + 2  # the training row of `in_train` is replaced
    corrected = merged.train[merged.train["text"] == in_train]
    assert list(corrected["label"]) == [1 - int(parts.train["label"].iloc[0])]
    assert merged.test is parts.test and merged.val is parts.val


@pytest.mark.parametrize(
    ("texts", "error"), [([], "no feedback yet"), (["@x held out"], "every feedback tweet is in a validation or test")]
)
def test_feedback_that_adds_nothing_is_a_clear_error(texts, error):
    parts = data.split(data.load_dataset("airline", sample=300))
    held_out = pd.DataFrame({"text": ["@y held out"], "label": [0]})  # the same tweet once cleaned
    with pytest.raises(data.DataError, match=error):
        data.add_feedback(parts, pd.DataFrame({"text": texts, "label": [1] * len(texts)}), [held_out])


def test_datasets_join_deduplicated_and_split_by_label_and_source(tmp_path):
    path = tmp_path / "mine.csv"
    airline = data.load_airline()
    mine = pd.DataFrame({"text": [*airline["text"].head(3).str.upper(), "brand new"], "label": [0, 0, 1, 1]})
    mine.to_csv(path, index=False)
    alone, joined = data.load_dataset("airline"), data.load_dataset(f"airline+{path}")
    assert len(alone) == 11_302  # 239 airline tweets are there twice once cleaned (retweets, copies)
    assert len(joined) == len(alone) + 1  # the three airline tweets again (in capitals) are dropped
    assert joined["source"].value_counts().to_dict() == {"airline": len(alone), "mine": 1}
    both = data.load_dataset("airline+sentiment140", sample=3_000)
    parts = data.split(both)
    for part in (parts.train, parts.val, parts.test):
        shares = part.groupby("source")["label"].mean()
        assert abs(shares["airline"] - 0.205) < 0.03 and abs(shares["sentiment140"] - 0.5) < 0.03
        assert abs((part["source"] == "airline").mean() - (both["source"] == "airline").mean()) < 0.02


def test_a_part_can_be_a_stratified_sample_of_its_tweets():
    frame = data.load_dataset("airline+sentiment140:2000")
    sentiment140 = frame[frame["source"] == "sentiment140"]
    assert 1_950 <= len(sentiment140) <= 2_000  # a sample of 2,000, less the tweets airline already has
    assert abs(sentiment140["label"].mean() - 0.5) < 0.01
    assert (frame["source"] == "airline").sum() == len(data.load_dataset("airline"))
    assert frame.equals(data.load_dataset("airline+sentiment140:2000"))  # the same sample every time


def test_targets_are_soft_when_distilled():
    frame = pd.DataFrame({"label": [0, 1]})
    assert data.targets(frame).tolist() == [0.0, 1.0]
    assert data.targets(frame.assign(target=[0.25, 0.75])).tolist() == [0.25, 0.75]
