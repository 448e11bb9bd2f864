"""Drift: the tweets a server answered, and its answers, against the served model's own data.

The current window comes from the service's prediction log (tweet_sentiment/core/prediction_log.py).
The reference is what the model's training run logged: its held-out test split with the model's
probabilities (``predictions_test.json``; same distribution as the training split, and the only part on
which probabilities and unknown words are honest) and the token counts of its training split
(``training_vocabulary.tsv``).

Each feature gets a population stability index (PSI) on fixed bins, the usual verdict thresholds
(< 0.1 stable, < 0.25 watch, else drift), and a two-sample test from SciPy for information.
"""

import base64
import io
import json
import logging
import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from scipy import stats

from tweet_model import DECISION_CUT
from tweet_model.text import clean_tweets
from tweet_sentiment.core.config import settings
from tweet_sentiment.core.models import ModelNotFound, ModelSpec
from tweet_sentiment.core.prediction_log import ServedLog
from tweet_sentiment.lifecycle.tracking import setup_monitoring_mlflow, test_predictions

log = logging.getLogger(__name__)

PSI_WATCH, PSI_DRIFT = 0.1, 0.25
MIN_ROWS = 50  # fewer served tweets than this say nothing reliable
PROB_BINS = np.linspace(0, 1, 11)
UNKNOWN_BINS = np.array([0, 1e-9, 0.1, 0.2, 0.3, 0.5, 1.0 + 1e-9])  # the first bin: no unknown token at all


class DriftError(ValueError):
    """No report can be made from what was given; the message says why."""


@dataclass(frozen=True)
class Reference:
    """What the served model was trained and tested on."""

    model: str  # registered model and version, e.g. tweet-lstm/3
    texts: list[str]  # held-out test split
    probs: np.ndarray  # the model's P(positive) on those texts
    vocabulary: frozenset[str]  # the tokens the model knows


UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str) -> datetime:
    """``30m``, ``24h``, ``7d`` ago, or an ISO date-time (the server's local time, as the log's timestamps)."""
    if match := re.fullmatch(r"(\d+)([mhd])", value):
        return datetime.now() - timedelta(**{UNITS[match[2]]: int(match[1])})
    return datetime.fromisoformat(value)


def window(served: ServedLog, model: str | None, since: datetime | None) -> tuple[pd.DataFrame, str]:
    """The rows of one model (default: the one that answered last) since a time; and that model."""
    rows = served.rows
    if rows.empty:
        raise DriftError("the prediction log has no readable row")
    model = model or rows["model"].iloc[-1]
    rows = rows[rows["model"] == model]
    if rows.empty:
        raise DriftError(f"no prediction of {model!r} in the log; it has: {sorted(set(served.rows['model']))}")
    if since is not None:
        rows = rows[rows["timestamp"] >= pd.Timestamp(since)]
        if rows.empty:
            raise DriftError(f"no prediction of {model!r} since {since:%Y-%m-%d %H:%M}")
    return rows.reset_index(drop=True), model


def psi(reference: np.ndarray, current: np.ndarray, bins: np.ndarray) -> float:
    """Population stability index of two samples on the given bin edges (empty bins smoothed)."""
    ref = np.histogram(np.clip(reference, bins[0], bins[-1]), bins)[0] + 0.5
    cur = np.histogram(np.clip(current, bins[0], bins[-1]), bins)[0] + 0.5
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def verdict(value: float) -> str:
    return "drift" if value >= PSI_DRIFT else "watch" if value >= PSI_WATCH else "stable"


def unknown_share(texts: list[str], vocabulary: frozenset[str]) -> np.ndarray:
    """Per tweet, the share of its tokens the model does not know (0 for a tweet without tokens)."""
    shares = []
    for tokens in (t.split() for t in clean_tweets(texts)):
        shares.append(sum(token not in vocabulary for token in tokens) / len(tokens) if tokens else 0.0)
    return np.asarray(shares)


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    psi: float
    verdict: str
    test: str
    p_value: float
    reference_mean: float
    current_mean: float


def _feature(name: str, reference: np.ndarray, current: np.ndarray, bins: np.ndarray) -> FeatureDrift:
    value = psi(reference, current, bins)
    if len(bins) == 3:  # two categories: a chi-square test on the counts
        table = [np.histogram(reference, bins)[0], np.histogram(current, bins)[0]]
        test, p_value = "chi-square", stats.chi2_contingency(np.asarray(table) + 1)[1]
    else:
        test, p_value = "Kolmogorov-Smirnov", stats.ks_2samp(reference, current).pvalue
    return FeatureDrift(
        name, value, verdict(value), test, float(p_value), float(np.mean(reference)), float(np.mean(current))
    )


@dataclass
class DriftReport:
    model: str
    rows: int
    window_start: str
    window_end: str
    reference_rows: int
    features: list[FeatureDrift]
    top_new_tokens: list[tuple[str, int]]
    bad_lines: int
    figures: dict[str, plt.Figure] = field(repr=False)

    @property
    def drift(self) -> bool:
        return any(f.verdict == "drift" for f in self.features)

    def summary(self) -> dict:
        return {
            "model": self.model,
            "drift": self.drift,
            "window": {"start": self.window_start, "end": self.window_end, "rows": self.rows},
            "reference_rows": self.reference_rows,
            "bad_log_lines": self.bad_lines,
            "features": {f.name: asdict(f) for f in self.features},
            "top_new_tokens": [{"token": t, "count": c} for t, c in self.top_new_tokens],
        }


def compare(reference: Reference, current: pd.DataFrame, bad_lines: int = 0) -> DriftReport:
    """The drift of every feature between the reference and the served window."""
    if len(current) < MIN_ROWS:
        raise DriftError(f"only {len(current)} served predictions in the window: at least {MIN_ROWS} are needed")
    texts = current["tweet"].tolist()
    probs = current["prob_positive"].to_numpy()
    lengths = (np.array([len(t) for t in reference.texts]), np.array([len(t) for t in texts]))
    length_bins = np.unique(np.quantile(lengths[0], np.linspace(0, 1, 11)))
    length_bins[0], length_bins[-1] = 0, max(lengths[0].max(), lengths[1].max()) + 1
    unknown = (unknown_share(reference.texts, reference.vocabulary), unknown_share(texts, reference.vocabulary))
    positive = ((reference.probs >= DECISION_CUT).astype(float), (probs >= DECISION_CUT).astype(float))
    samples = {
        "predicted_positive": (*positive, [0, 0.5, 1]),
        "prob_positive": (reference.probs, probs, PROB_BINS),
        "tweet_length": (*lengths, length_bins),
        "unknown_token_share": (*unknown, UNKNOWN_BINS),
    }
    features = [_feature(name, ref, cur, np.asarray(bins)) for name, (ref, cur, bins) in samples.items()]
    new_tokens = Counter(
        token for tweet in clean_tweets(texts) for token in tweet.split() if token not in reference.vocabulary
    )
    figures = {name: _histogram(name, ref, cur, np.asarray(bins)) for name, (ref, cur, bins) in samples.items()}
    return DriftReport(
        model=reference.model,
        rows=len(current),
        window_start=str(current["timestamp"].min()),
        window_end=str(current["timestamp"].max()),
        reference_rows=len(reference.texts),
        features=features,
        top_new_tokens=new_tokens.most_common(20),
        bad_lines=bad_lines,
        figures=figures,
    )


def _histogram(name: str, reference: np.ndarray, current: np.ndarray, bins: np.ndarray) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 3))
    for sample, label in ((reference, "reference"), (current, "served")):
        weights = np.full(len(sample), 1 / max(len(sample), 1))
        ax.hist(np.clip(sample, bins[0], bins[-1]), bins=bins, weights=weights, alpha=0.5, label=label)
    ax.set_title(name)
    ax.set_ylabel("share")
    ax.legend()
    fig.tight_layout()
    plt.close(fig)
    return fig


def _png(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode()


def html(report: DriftReport) -> str:
    """A self-contained HTML page: verdicts, histograms, new tokens."""
    rows = "".join(
        f"<tr><td>{f.name}</td><td>{f.psi:.3f}</td><td class='{f.verdict}'>{f.verdict}</td>"
        f"<td>{f.reference_mean:.3f}</td><td>{f.current_mean:.3f}</td><td>{f.test}: p={f.p_value:.2g}</td></tr>"
        for f in report.features
    )
    tokens = ", ".join(f"<code>{t}</code> ({c})" for t, c in report.top_new_tokens) or "none"
    images = "".join(f"<img alt='{n}' src='data:image/png;base64,{_png(f)}'>" for n, f in report.figures.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Drift report: {report.model}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}
.drift{{color:#b00;font-weight:bold}} .watch{{color:#b60}} .stable{{color:#070}}</style></head><body>
<h1>Drift report: {report.model}</h1>
<p><b>{"Drift found" if report.drift else "No drift"}</b> in {report.rows} served predictions from
{report.window_start} to {report.window_end}, against the model's held-out test split
({report.reference_rows} tweets). {report.bad_lines} unreadable log line(s) skipped.
PSI: &lt; {PSI_WATCH} stable, &lt; {PSI_DRIFT} watch, else drift.</p>
<table><tr><th>feature</th><th>PSI</th><th>verdict</th><th>reference mean</th><th>served mean</th><th>test</th></tr>
{rows}</table>
<h2>Most frequent tokens the model does not know</h2><p>{tokens}</p>
<h2>Distributions</h2>{images}</body></html>"""


def write(report: DriftReport, folder: Path) -> tuple[Path, Path]:
    """Write ``drift_report.html`` and ``drift_summary.json`` into the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    page, summary = folder / "drift_report.html", folder / "drift_summary.json"
    page.write_text(html(report), encoding="utf-8")
    summary.write_text(json.dumps(report.summary(), indent=2), encoding="utf-8")
    return page, summary


def load_reference(model: str) -> Reference:
    """The reference of a served model label (``tweet-lstm/3`` or ``tweet-lstm/3@champion``), from its training run."""
    client = MlflowClient(settings().tracking_uri)
    try:
        spec = ModelSpec.parse(model)
        name, version = spec.name, spec.registered_version(client)
        run = client.get_run(client.get_model_version(name, version).run_id)
        with tempfile.TemporaryDirectory() as folder:  # without a dst_path, MLflow leaves its download behind
            vocabulary = mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id,
                artifact_path="training_vocabulary.tsv",
                dst_path=folder,
                tracking_uri=settings().tracking_uri,
            )
            lines = Path(vocabulary).read_text(encoding="utf-8").split("\n")
    except (MlflowException, ModelNotFound) as error:
        message = getattr(error, "message", error)
        raise DriftError(f"no reference for {model!r} in MLflow ({settings().tracking_uri}): {message}") from None
    tokens = [line.split("\t")[0] for line in lines if line]
    if max_tokens := run.data.params.get("max_tokens"):  # the LSTM keeps its most frequent tokens only
        tokens = tokens[: int(max_tokens) - 2]  # minus the padding and out-of-vocabulary entries
    test = test_predictions(run.info.run_id)
    return Reference(model, test["text"].tolist(), test["prob_positive"].to_numpy(), frozenset(tokens))


def log_to_mlflow(report: DriftReport, files: tuple[Path, Path]) -> str:
    """Record the report as a run of the monitoring experiment; returns the run id."""
    setup_monitoring_mlflow()
    with mlflow.start_run(run_name=f"drift {report.model}") as run:
        mlflow.set_tags({"model": report.model, "drift": str(report.drift).lower()})
        mlflow.log_params({"window_start": report.window_start, "window_end": report.window_end, "rows": report.rows})
        mlflow.log_metrics({f"psi_{f.name}": f.psi for f in report.features})
        for path in files:
            mlflow.log_artifact(str(path))
    return run.info.run_id
