"""The prediction log: what the service answered, one JSON line per model call, written by the service and
read by the drift report and the live comparison. Its fields are named here only.

A record holds lists, one item per tweet of the call: ``ids``, ``tweets``, ``probs_positive``; the ``model``
that answered, and, where a challenger scored the call in shadow, ``challenger`` and
``challenger_probs_positive``. BentoML's monitor adds the ``timestamp``.
"""

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bentoml
import pandas as pd

from tweet_sentiment.core.config import PREDICTION_LOG, settings

log = logging.getLogger(__name__)


class PredictionLogError(ValueError):
    """The prediction log cannot be read; the message says why."""


def record(
    ids: list[str],
    tweets: list[str],
    probs: Sequence[float],
    model: str,
    challenger: str | None = None,
    challenger_probs: Sequence[float] | None = None,
) -> None:
    """Write one model call. Raw text goes in as "categorical": BentoML's monitor knows no text type."""
    with bentoml.monitor(PREDICTION_LOG) as monitor:
        monitor.log(ids, name="ids", role="feature", data_type="categorical")
        monitor.log(tweets, name="tweets", role="feature", data_type="categorical")
        monitor.log(list(probs), name="probs_positive", role="prediction", data_type="numerical")
        monitor.log(model, name="model", role="feature", data_type="categorical")
        if challenger:
            theirs = None if challenger_probs is None else list(challenger_probs)
            monitor.log(theirs, name="challenger_probs_positive", role="prediction", data_type="numerical")
            monitor.log(challenger, name="challenger", role="feature", data_type="categorical")


LOG_COLUMNS = ["id", "tweet", "prob_positive", "model", "challenger", "challenger_prob", "timestamp"]


@dataclass
class ServedLog:
    rows: pd.DataFrame  # LOG_COLUMNS: challenger and challenger_prob are None where none scored the tweet
    files: int = 0
    bad_lines: list[str] = field(default_factory=list)  # "file:line: why", for the report


def _served_rows(record: dict) -> list[dict]:
    """The tweets of one log record: a model call (``tweets``, ``probs_positive`` lists; ``ids`` and a
    challenger's ``challenger_probs_positive`` where logged), or one tweet (``tweet``, ``prob_positive``:
    the service's records before it logged per call)."""
    if "tweets" in record:
        tweets, probs = record["tweets"], record["probs_positive"]
    else:
        tweets, probs = [record["tweet"]], [record["prob_positive"]]
    ids = record.get("ids") or [None] * len(tweets)
    theirs = record.get("challenger_probs_positive") or [None] * len(tweets)
    if not all(isinstance(column, list) and len(column) == len(tweets) for column in (probs, ids, theirs)):
        raise ValueError("tweets, probs_positive, ids and challenger_probs_positive are not lists of one length")
    model, timestamp = str(record.get("model", "")), pd.Timestamp(record["timestamp"])
    challenger = record.get("challenger") if record.get("challenger_probs_positive") else None
    return [
        {
            "id": prediction_id,
            "tweet": str(tweet),
            "prob_positive": float(prob),
            "model": model,
            "challenger": challenger,
            "challenger_prob": None if their is None else float(their),
            "timestamp": timestamp,
        }
        for prediction_id, tweet, prob, their in zip(ids, tweets, probs, theirs, strict=True)
    ]


def read_prediction_log(folder: Path | None = None) -> ServedLog:
    """Every parseable line of the prediction log (all workers, rotated files included); bad lines are counted."""
    folder = folder or settings().monitor_dir / PREDICTION_LOG / "data"
    files = sorted(folder.glob("data.*.log*")) if folder.is_dir() else []
    if not files:
        raise PredictionLogError(
            f"no prediction log in {folder}: serve some predictions first (the service writes it), "
            "or point --log-dir at the folder with data.*.log files"
        )
    records, bad = [], []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").split("\n"), 1):
            if not line.strip():
                continue
            try:
                records += _served_rows(json.loads(line))
            except (ValueError, KeyError, TypeError) as error:
                bad.append(f"{path.name}:{number}: {type(error).__name__}: {error}")
    if bad:
        log.warning("skipped %d unreadable line(s) of the prediction log, first: %s", len(bad), bad[0])
    rows = pd.DataFrame(records, columns=LOG_COLUMNS)
    return ServedLog(rows.sort_values("timestamp", kind="stable").reset_index(drop=True), len(files), bad)
