"""Load tweet datasets as ``text``/``label`` frames (label 0 = negative, 1 = positive) and split them."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tweet_model.text import clean_tweet
from tweet_sentiment.core.config import EXTERNAL_TEST_SETS, SEED, settings

log = logging.getLogger(__name__)

LABEL_NAMES = {"0": 0, "negative": 0, "neg": 0, "1": 1, "positive": 1, "pos": 1}


class DataError(ValueError):
    """The data cannot be used as given; the message says why and where."""


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def _frame(texts: pd.Series, labels: pd.Series, source: str) -> pd.DataFrame:
    """Normalise labels to 0/1 and drop empty texts, raising DataError on anything unknown."""
    names = labels.astype(str).str.strip().str.lower()
    unknown = sorted(set(names[~names.isin(LABEL_NAMES)]))
    if unknown:
        raise DataError(f"{source}: unknown labels {unknown[:5]}; expected one of {sorted(LABEL_NAMES)}")
    frame = pd.DataFrame({"text": texts.fillna("").astype(str).str.strip(), "label": names.map(LABEL_NAMES)})
    empty = frame["text"] == ""
    if empty.any():
        log.warning("%s: dropping %d rows with empty text", source, int(empty.sum()))
        frame = frame[~empty]
    if frame.empty:
        raise DataError(f"{source}: no rows with text")
    return frame.reset_index(drop=True)


MISSING = "file not found (the datasets: `python download_data.py`; a CSV of yours: check the path)"


def _read_csv(path: Path, columns: list[str], **kwargs) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: {MISSING}")
    try:
        frame = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame


def load_csv(path: str | Path) -> pd.DataFrame:
    """A user CSV with ``text`` and ``label`` columns (labels 0/1 or negative/positive)."""
    path = Path(path)
    frame = _read_csv(path, ["text", "label"])
    return _frame(frame["text"], frame["label"], str(path))


def load_airline(path: Path | None = None) -> pd.DataFrame:
    """Twitter US Airline Sentiment, neutral tweets dropped."""
    path = path or settings().data_dir / "airline" / "tweets.csv"
    frame = _read_csv(path, ["text", "airline_sentiment"])
    frame = frame[frame["airline_sentiment"] != "neutral"]
    return _frame(frame["text"], frame["airline_sentiment"], str(path))


def _lines(path: Path) -> list[str]:
    # Split on "\n" only: some tweets hold Unicode line separators that splitlines() would break.
    if not path.is_file():
        raise DataError(f"{path}: {MISSING}")
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def load_sentiment140(folder: Path | None = None) -> pd.DataFrame:
    """The Sentiment140 100k sample (labels from emoticons, so noisy)."""
    folder = folder or settings().data_dir / "sentiment140_100k"
    pos, neg = _lines(folder / "positive.txt"), _lines(folder / "negative.txt")
    return _frame(pd.Series(pos + neg), pd.Series([1] * len(pos) + [0] * len(neg)), str(folder))


def _strata(frame: pd.DataFrame) -> pd.Series:
    """Label and source: every split and sample keeps the class balance of every source."""
    return frame["label"].astype(str) + frame["source"] if "source" in frame else frame["label"]


def subsample(frame: pd.DataFrame, size: int | None, seed: int = SEED) -> pd.DataFrame:
    """A stratified sample of ``size`` rows (the whole frame when size is None or larger)."""
    if not size or size >= len(frame):
        return frame
    sample, _ = train_test_split(frame, train_size=size, stratify=_strata(frame), random_state=seed)
    return sample.reset_index(drop=True)


@dataclass(frozen=True)
class Dataset:
    name: str
    load: Callable[[], pd.DataFrame]
    noisy_labels: bool = False  # labels a teacher model may replace (distillation)


DATASETS = {
    d.name: d
    for d in (Dataset("airline", lambda: load_airline()), Dataset("sentiment140", lambda: load_sentiment140(), True))
}


def noisy(frame: pd.DataFrame) -> pd.Series:
    """Which rows come from a source whose labels are noisy (a teacher may relabel them)."""
    return frame["source"].map(lambda source: source in DATASETS and DATASETS[source].noisy_labels).astype(bool)


def _part(spec: str) -> tuple[str, int | None]:
    """``sentiment140:30000`` -> (``sentiment140``, 30000); a part without ``:N`` is taken whole."""
    name, colon, rows = spec.rpartition(":")
    return (name, int(rows)) if colon and rows.isdigit() else (spec, None)


def load_dataset(name: str, sample: int | None = None) -> pd.DataFrame:
    """A training set: a dataset name, a CSV path, or several joined by ``+`` (``airline+sentiment140``);
    ``NAME:N`` takes a stratified sample of N of that part's tweets (``airline+sentiment140:30000``).

    Rows get a ``source`` column; a tweet found twice (after cleaning) is kept once, first come.
    """
    frames = []
    for spec in name.split("+"):
        part, rows = _part(spec)
        frame = DATASETS[part].load() if part in DATASETS else load_csv(part)
        frames.append(subsample(frame, rows).assign(source=part if part in DATASETS else Path(part).stem))
    frame = pd.concat(frames, ignore_index=True)
    duplicated = frame["text"].map(clean_tweet).duplicated()
    if duplicated.any():
        log.info("%s: dropping %d duplicate tweets", name, int(duplicated.sum()))
        frame = frame[~duplicated].reset_index(drop=True)
    return subsample(frame, sample)


def split(frame: pd.DataFrame, val: float = 0.1, test: float = 0.1, seed: int = SEED) -> Split:
    """Train/validation/test split with a fixed seed, stratified by label and source."""
    if frame["label"].nunique() < 2:
        raise DataError("need both positive and negative tweets to train")
    strata = _strata(frame)
    rest, test_frame = train_test_split(frame, test_size=test, stratify=strata, random_state=seed)
    train, val_frame = train_test_split(
        rest, test_size=val / (1 - test), stratify=strata[rest.index], random_state=seed
    )
    return Split(*(f.reset_index(drop=True) for f in (train, val_frame, test_frame)))


def targets(frame: pd.DataFrame) -> np.ndarray:
    """What a model that can learn probabilities fits: the soft ``target`` when distilled, else the label."""
    return frame["target" if "target" in frame else "label"].to_numpy(dtype="float32")


def load_tweeteval_val() -> pd.DataFrame:
    """TweetEval's validation split, binary: a general-domain set for model selection, never for training."""
    return _tweeteval("val").assign(source="tweeteval_val")


def _tweeteval(part: str) -> pd.DataFrame:
    folder = settings().data_dir / "tweeteval_sentiment"
    frame = pd.DataFrame({"text": _lines(folder / f"{part}_text.txt"), "label": _lines(folder / f"{part}_labels.txt")})
    frame = frame[frame["label"].str.strip() != "1"]
    return _frame(frame["text"], frame["label"].str.strip().map({"0": 0, "2": 1}), f"{folder}/{part}")


def add_feedback(parts: Split, feedback: pd.DataFrame, held_out: list[pd.DataFrame]) -> tuple[Split, pd.DataFrame]:
    """Add labelled feedback to the training split only: one row per tweet (the latest feedback wins),
    never a tweet of a validation or test set, and replacing the training row of the same tweet.

    Tweets are compared after cleaning, so case, spacing, URLs and mentions do not hide a duplicate.
    Returns the new split and the feedback rows that went in.
    """
    if feedback.empty:
        raise DataError("--with-feedback: the feedback store has no feedback yet; collect some with POST /feedback")
    key = feedback["text"].map(clean_tweet)
    feedback = feedback.assign(key=key).drop_duplicates("key", keep="last")
    held_out_keys = set().union(*(set(frame["text"].map(clean_tweet)) for frame in held_out))
    kept = feedback[~feedback["key"].isin(held_out_keys)]
    log.info(
        "feedback: %d rows, %d distinct tweets, %d kept (%d in a validation or test set)",
        len(key),
        len(feedback),
        len(kept),
        len(feedback) - len(kept),
    )
    if kept.empty:
        raise DataError("--with-feedback: every feedback tweet is in a validation or test set; nothing to train on")
    train = parts.train[~parts.train["text"].map(clean_tweet).isin(set(kept["key"]))]
    kept = kept[["text", "label"]].reset_index(drop=True)
    return Split(pd.concat([train, kept.assign(source="feedback")], ignore_index=True), parts.val, parts.test), kept


def load_external(name: str) -> pd.DataFrame:
    """An external test set, binary (neutral dropped). Evaluate on it; never train or tune on it."""
    if name == "tweeteval":
        return _tweeteval("test")
    if name == "sentiment140_manual":
        path = settings().data_dir / "sentiment140_manual_test" / "testdata.manual.2009.06.14.csv"
        frame = pd.read_csv(path, header=None, names=["label", "text"])
        frame = frame[frame["label"] != 2]
        return _frame(frame["text"], frame["label"].map({0: 0, 4: 1}), str(path))
    raise DataError(f"unknown external test set {name!r}; expected one of {EXTERNAL_TEST_SETS}")
