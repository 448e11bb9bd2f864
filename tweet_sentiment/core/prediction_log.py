"""The prediction log: what the service answered, one JSON line per model call, written by the service and
read by the drift report and the live comparison. Its fields are named here only.

A record holds lists, one item per tweet of the call: ``ids``, ``tweets``, ``probs_positive``; the ``model``
that answered and the ``timestamp`` (local time); where a challenger scored the call in shadow, ``challenger``
and ``challenger_probs_positive``. Each worker writes ``data.<worker>.log`` in the log's folder
(TWEETS_MONITOR_DIR/tweet_predictions/data), rotated as ``data.<worker>.log.1``, ``.2``...
"""

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from tweet_sentiment.core.config import PREDICTION_LOG, settings
from tweet_sentiment.core.dependencies import Dependency

log = logging.getLogger(__name__)


class PredictionLogError(ValueError):
    """The prediction log cannot be read; the message says why."""


def log_folder() -> Path:
    return settings().monitor_dir / PREDICTION_LOG / "data"


class PredictionLog:
    """One worker's writer. ``record`` queues a model call and returns at once; a thread of its own appends
    what has queued every ``flush_s``, and rotates the file past ``max_bytes`` (``backups`` old files kept).

    Bounded: at most ``capacity`` records wait. Past that, or when the disk refuses them (full, unwritable),
    records are dropped and each is counted as a failure of the ``prediction_log`` dependency: a request never
    waits on the disk, and the log says so once (core.dependencies).
    """

    health = Dependency("prediction_log")

    def __init__(
        self,
        folder: Path | None = None,
        worker: int = 0,
        capacity: int = 10_000,
        max_bytes: int = 50 * 2**20,
        backups: int = 10,
        flush_s: float = 0.2,
    ) -> None:
        self.path = (folder or log_folder()) / f"data.{worker}.log"
        self.capacity, self.max_bytes, self.backups, self.flush_s = capacity, max_bytes, backups, flush_s
        self._waiting: list[dict] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def record(
        self,
        ids: list[str],
        tweets: list[str],
        probs: Sequence[float],
        model: str,
        challenger: str | None = None,
        challenger_probs: Sequence[float] | None = None,
    ) -> None:
        """Queue one model call's record."""
        entry = {"ids": ids, "tweets": tweets, "probs_positive": [float(p) for p in probs], "model": model}
        if challenger:
            theirs = None if challenger_probs is None else [float(p) for p in challenger_probs]
            entry |= {"challenger": challenger, "challenger_probs_positive": theirs}
        entry["timestamp"] = datetime.now().isoformat()
        with self._lock:
            room = len(self._waiting) < self.capacity
            if room:
                self._waiting.append(entry)
        if not room:
            self.health.failed(OverflowError(f"{self.capacity:,} records waiting for the disk"))

    def close(self, timeout: float = 10) -> None:
        """Write what waits, then stop the thread; what it could not write within ``timeout`` is said."""
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._lock:
                waiting = len(self._waiting)
            log.error("the prediction log is still writing %g s after close: %d records may be lost", timeout, waiting)

    def _run(self) -> None:
        while not self._stopping.wait(self.flush_s):
            self._write()
        self._write()

    def _write(self) -> None:
        with self._lock:
            entries, self._waiting = self._waiting, []
        if not entries:
            return
        lines = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_file() and self.path.stat().st_size + len(lines) > self.max_bytes:
                self._rotate()
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(lines)
        except OSError as error:
            for _ in entries:
                self.health.failed(error)
            return
        self.health.succeeded()

    def _rotate(self) -> None:
        """data.0.log -> data.0.log.1 -> data.0.log.2 ..., the oldest beyond ``backups`` dropped."""
        for number in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{number + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))


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
    folder = folder or log_folder()
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
