"""Champion against challenger on live traffic: which model is right on the tweets the service answers.

A server with a challenger logs, for each prediction id, both models' P(positive) (tweet_sentiment/shadow.py);
the feedback store holds what users reported. A report is joined to both answers by the prediction id it
names or, when it names none, to the latest answer logged for the same tweet before the report. The latest
report on a prediction counts, once.

Each model's accuracy on the same labelled tweets comes with a 95% Wilson interval, and the paired
comparison is McNemar's exact test: of the tweets exactly one of the two got right, does the challenger get
more than chance would give it? A challenger is promoted when it does, at significance ``alpha`` (two-sided),
on at least ``min_labelled`` labelled tweets.

Feedback is biased towards the answers users noticed, mostly wrong ones: live accuracies are lower than on
a random sample of traffic, and the comparison is fair between the two models (the same tweets for both),
not a measure of either on all traffic.
"""

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from scipy.stats import binomtest

from tweet_model import DECISION_CUT
from tweet_sentiment.core.config import settings
from tweet_sentiment.core.feedback import FeedbackStore
from tweet_sentiment.core.models import ModelNotFound, ModelSpec
from tweet_sentiment.core.prediction_log import read_prediction_log
from tweet_sentiment.lifecycle.promotion import Decision, champion_version, promote
from tweet_sentiment.lifecycle.tracking import setup_monitoring_mlflow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveComparison:
    """Two models on the same live, labelled tweets."""

    champion: str  # as the server labelled it, e.g. tweet-lstm/3@champion
    challenger: str
    scored: int  # tweets both answered in the window
    agreed: int  # of those, with the same label
    labelled: int  # of those, with labelled feedback
    champion_right: int
    challenger_right: int
    only_champion_right: int
    only_challenger_right: int

    @property
    def p_value(self) -> float:
        """McNemar's exact test (two-sided) on the tweets exactly one model got right."""
        discordant = self.only_champion_right + self.only_challenger_right
        return binomtest(self.only_challenger_right, discordant, 0.5).pvalue if discordant else 1.0

    def accuracy(self, right: int) -> tuple[float, float, float]:
        """Accuracy and its 95% Wilson interval."""
        if not self.labelled:
            return float("nan"), 0.0, 1.0
        interval = binomtest(right, self.labelled).proportion_ci(0.95, method="wilson")
        return right / self.labelled, interval.low, interval.high

    def summary(self) -> str:
        rows = [f"{self.champion} (champion) against {self.challenger} (challenger)"]
        rows.append(f"  scored by both: {self.scored}, same label: {self.agreed / max(self.scored, 1):.1%}")
        for role, right in (("champion", self.champion_right), ("challenger", self.challenger_right)):
            accuracy, low, high = self.accuracy(right)
            rows.append(f"  {role:10} accuracy {accuracy:.3f} [95% CI {low:.3f}-{high:.3f}] on {self.labelled} tweets")
        rows.append(
            f"  only the champion right: {self.only_champion_right}, only the challenger right: "
            f"{self.only_challenger_right}; McNemar exact p = {self.p_value:.4g}"
        )
        return "\n".join(rows)


def scored_answers(log_folder: Path | None = None) -> pd.DataFrame:
    """The answers a challenger scored too, from the prediction log (prediction_log.LOG_COLUMNS)."""
    rows = read_prediction_log(log_folder).rows
    rows = rows[rows["challenger_prob"].notna()]
    return rows.assign(timestamp=rows["timestamp"].astype("datetime64[ns]"))


def labelled_answers(scored: pd.DataFrame, since: datetime | None = None) -> pd.DataFrame:
    """The ``scored`` answers with labelled feedback (since a time), one row each, with its ``label``
    (1 positive): a report joins the answer whose id it names, else the latest answer to its tweet before it."""
    feedback = pd.DataFrame(
        FeedbackStore().labelled(since.timestamp() if since else None),
        columns=["text", "label", "created_at", "model", "prediction_id"],
    )
    # As the log's timestamps: the local time, naive.
    when = pd.to_datetime([datetime.fromtimestamp(t) for t in feedback["created_at"]])
    feedback["timestamp"] = pd.Series(when, index=feedback.index, dtype="datetime64[ns]")
    named = feedback[feedback["prediction_id"].notna()]
    by_id = named.merge(scored, left_on="prediction_id", right_on="id", suffixes=("_feedback", ""))
    by_text = pd.merge_asof(
        feedback[feedback["prediction_id"].isna()].sort_values("timestamp"),
        scored.sort_values("timestamp"),
        on="timestamp",
        left_by="text",
        right_by="tweet",
        direction="backward",
        suffixes=("_feedback", ""),
    ).dropna(subset=["id"])
    joined = pd.concat([by_id, by_text]).sort_values("created_at", kind="stable")
    return joined.drop_duplicates("id", keep="last")  # the latest report on an answer


def compare(name: str, since: datetime | None = None, log_folder: Path | None = None) -> list[LiveComparison]:
    """Every (champion, challenger) pair that served ``name``'s answers in the window, most labelled first."""
    scored = scored_answers(log_folder)
    scored = scored[[ModelSpec.parse(model).name == name for model in scored["model"]]]
    answers = labelled_answers(scored, since)
    window = scored if since is None else scored[scored["timestamp"] >= pd.Timestamp(since)]
    comparisons = []
    for (champion, challenger), pair in window.groupby(["model", "challenger"]):
        labelled = answers[(answers["model"] == champion) & (answers["challenger"] == challenger)]
        truth = labelled["label"].to_numpy() == 1
        cut = DECISION_CUT
        champion_right = (labelled["prob_positive"].to_numpy() >= cut) == truth
        challenger_right = (labelled["challenger_prob"].to_numpy() >= cut) == truth
        comparisons.append(
            LiveComparison(
                champion=champion,
                challenger=challenger,
                scored=len(pair),
                agreed=int(((pair["prob_positive"] >= cut) == (pair["challenger_prob"] >= cut)).sum()),
                labelled=len(labelled),
                champion_right=int(champion_right.sum()),
                challenger_right=int(challenger_right.sum()),
                only_champion_right=int((champion_right & ~challenger_right).sum()),
                only_challenger_right=int((challenger_right & ~champion_right).sum()),
            )
        )
    return sorted(comparisons, key=lambda c: -c.labelled)


def decide_live(comparison: LiveComparison, alpha: float, min_labelled: int) -> Decision:
    """The live promotion rule: enough labelled tweets, the challenger right more often, and McNemar's test
    significant."""
    figures = (
        f"on {comparison.labelled} labelled live tweets, the challenger alone was right on "
        f"{comparison.only_challenger_right}, the champion alone on {comparison.only_champion_right} "
        f"(McNemar exact p = {comparison.p_value:.4g})"
    )
    if comparison.labelled < min_labelled:
        return Decision(False, f"{figures}: fewer than the {min_labelled} labelled tweets the rule needs")
    if comparison.only_challenger_right <= comparison.only_champion_right or comparison.p_value >= alpha:
        return Decision(False, f"{figures}: not better at significance {alpha}")
    return Decision(True, f"{figures}: better at significance {alpha}")


def log_comparison(comparison: LiveComparison, since: datetime | None, decision: Decision | None = None) -> str:
    """Record a comparison as a run of the monitoring experiment; returns the run id."""
    setup_monitoring_mlflow()
    with mlflow.start_run(run_name=f"live {comparison.champion} vs {comparison.challenger}") as run:
        mlflow.set_tags({"champion": comparison.champion, "challenger": comparison.challenger, "kind": "live"})
        mlflow.log_param("since", since.isoformat(timespec="seconds") if since else "all")
        counts = {k: v for k, v in asdict(comparison).items() if isinstance(v, int)}
        accuracies = {}
        for role, right in (("champion", comparison.champion_right), ("challenger", comparison.challenger_right)):
            if comparison.labelled:
                accuracy, low, high = comparison.accuracy(right)
                accuracies |= {f"{role}_accuracy": accuracy, f"{role}_ci_low": low, f"{role}_ci_high": high}
        mlflow.log_metrics(counts | accuracies | {"mcnemar_p": comparison.p_value})
        if decision is not None:
            mlflow.set_tags({"promoted": str(decision.promoted).lower(), "decision": decision.reason})
    return run.info.run_id


def promote_if_better_live(
    name: str,
    version: str,
    since: datetime | None = None,
    alpha: float | None = None,
    min_labelled: int | None = None,
    by: str | None = None,
    log_folder: Path | None = None,
) -> Decision:
    """Give ``version`` the champion alias if, served as the challenger of the current champion, it was
    better on live labelled tweets (``decide_live``). The decision and its comparison run are recorded on the
    version."""
    config = settings()
    alpha = config.live_alpha if alpha is None else alpha
    min_labelled = config.live_min_labelled if min_labelled is None else min_labelled
    client = MlflowClient(config.tracking_uri)
    champion = champion_version(name, client)
    if champion is None:
        raise ModelNotFound(f"{name} has no champion to compare v{version} with")

    def matches(label: str, wanted: str) -> bool:
        spec = ModelSpec.parse(label)
        return (spec.name, spec.version) == (name, str(wanted))

    pairs = [
        pair
        for pair in compare(name, since, log_folder)
        if matches(pair.champion, champion.version) and matches(pair.challenger, version)
    ]
    if not pairs:
        decision = Decision(False, f"v{version} was never served as the challenger of champion v{champion.version}")
        run_id = None
    else:
        decision = decide_live(pairs[0], alpha, min_labelled)
        run_id = log_comparison(pairs[0], since, decision)
    client.set_model_version_tag(name, str(version), "live_promotion_decision", decision.reason)
    if run_id:
        client.set_model_version_tag(name, str(version), "live_comparison_run", run_id)
    if decision.promoted:
        promote(name, str(version), f"better on live traffic: {decision.reason}", by=by, client=client)
    log.info("%s v%s %s: %s", name, version, "promoted" if decision.promoted else "not promoted", decision.reason)
    return decision
