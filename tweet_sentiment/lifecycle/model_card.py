"""A model card for every registered version (Mitchell et al., "Model Cards for Model Reporting", 2019).

Written from the version's MLflow run: logged as the run's artifact at the end of training
(``model_card.md``), carried into the BentoML import (its metadata), served at ``GET /model-card``, and
written to ``docs/model_cards/`` for the champions by ``python -m train.report``.
"""

from datetime import UTC, datetime

import mlflow
import pandas as pd
from mlflow.entities import Run

from tweet_model import DECISION_CUT
from tweet_model.text import clean_tweet
from tweet_sentiment.core.config import EXTERNAL_TEST_SETS, settings
from tweet_sentiment.core.french import ACCURACY_METRIC
from tweet_sentiment.lifecycle import behaviour
from tweet_sentiment.lifecycle.tracking import test_predictions

ERAS = {
    "airline": "US airline customer tweets, February 2015, hand-labelled",
    "sentiment140": "general tweets, April-June 2009, labelled by their emoticons (noisy)",
}
SETS = {
    "test": "held-out split of the training data (10%, stratified by label and source)",
    "test_airline": "its airline tweets",
    "tweeteval_val": "TweetEval validation (2017): model selection only",
    "tweeteval": "TweetEval test (2017): external, never trained or tuned on",
    "sentiment140_manual": "Sentiment140 hand-labelled test (2009): external, never trained or tuned on",
}
WEAK_BELOW = 0.9  # a behavioural capability passed less often than this is a known failure mode
MISTAKES = 5
WORD_EFFECTS = "word_effects.json"  # the run's table of words' mean effect on the held-out split
EXPLAINED_TWEETS, MIN_WORD_COUNT, WORDS_SHOWN = 200, 3, 8


def word_effects(explain, tweets: list[str], seed: int = 42) -> pd.DataFrame:
    """Each word's mean effect on P(positive) over a sample of ``tweets`` (tweet_model/explain.py), words as the
    model sees them (cleaned: "@united" is "<user>"), those seen at least MIN_WORD_COUNT times, strongest first."""
    sample = pd.Series(tweets).sample(min(EXPLAINED_TWEETS, len(tweets)), random_state=seed).tolist()
    rows = [
        {"word": clean_tweet(word.text), "effect": effect}
        for explanation in explain(sample)
        for word, effect in zip(explanation.words, explanation.effects, strict=True)
        if clean_tweet(word.text)
    ]
    if not rows:
        return pd.DataFrame(columns=["word", "tweets", "mean_effect"])
    grouped = pd.DataFrame(rows).groupby("word")["effect"].agg(tweets="size", mean_effect="mean").reset_index()
    grouped = grouped[grouped["tweets"] >= MIN_WORD_COUNT]
    return grouped.reindex(grouped["mean_effect"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def word_effects_section(effects: pd.DataFrame | None) -> list[str]:
    if effects is None or effects.empty:
        return []

    def listed(rows: pd.DataFrame) -> str:
        return ", ".join(f"`{r.word}` {r.mean_effect:+.3f}" for r in rows.itertuples()) or "none"

    return [
        "## What moves its label",
        "",
        f"Words with the largest mean effect on P(positive) over {EXPLAINED_TWEETS} tweets of the held-out split "
        f"(each word's effect as `POST /explain` gives it; words as the model sees them, seen at least "
        f"{MIN_WORD_COUNT} times):",
        "",
        f"- towards positive: {listed(effects[effects['mean_effect'] > 0].head(WORDS_SHOWN))}",
        f"- towards negative: {listed(effects[effects['mean_effect'] < 0].head(WORDS_SHOWN))}",
    ]


def render(
    name: str, version: str, run: Run, mistakes: list[dict] | None = None, effects: pd.DataFrame | None = None
) -> str:
    """The card of ``name`` version ``version`` from its training run; ``mistakes``: its most confident
    wrong predictions on the held-out split (text, label, prob_positive); ``effects``: its words' mean effects."""
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    dataset = params.get("dataset", "airline")
    teacher = params.get("teacher")
    sources = [part.split(":")[0] for part in dataset.split("+")]
    phrases = int(params.get("phrase_rows", 0))  # rows the teacher scored, not tweets
    tweets = int(params["train_rows"]) - phrases if "train_rows" in params else "?"
    lines = [
        f"# Model card: `{name}` version {version}",
        "",
        f"{tags.get('family', 'unknown')} model, MLflow run `{run.info.run_id}`, trained "
        f"{_date(run)} on `{dataset}`"
        + (f", distilled from `{teacher}`" if teacher not in (None, "None") else "")
        + ".",
        "",
        "## Intended use",
        "",
        "Labels an English tweet positive or negative (the service answers `label` and `prob_positive`), and a "
        "French one through its English translation where it is good enough (French tweets, below). Out of "
        "scope: other languages (the service flags them with a warning: the label is then a guess), neutral "
        "or mixed sentiment (there is no third class), and text far from the training tweets' domains and eras "
        "below. Feedback and monitoring exist because the tweets served today are not those.",
        "",
        "## Training data",
        "",
        *[f"- `{source}`: {ERAS.get(source, 'a user-supplied CSV')}" for source in sources],
        f"- {tweets} training tweets after cleaning and deduplication"
        + (", feedback rows included" if params.get("with_feedback") == "True" else "")
        + "; validation and test splits held out by label and source (seed 42).",
        *([f"- {phrases} phrases cut from them, scored by the teacher (docs/training.md)"] if phrases else []),
        "",
        "## Metrics",
        "",
        f"Decision threshold on the model's own P(positive), chosen on validation data: "
        f"{metrics.get('decision_threshold', DECISION_CUT):.3f} (served P(positive) is re-centred so "
        f"{DECISION_CUT} is the cut).",
        "",
        "| evaluation set | accuracy | F1 (positive) | ROC AUC | specificity (negatives) |",
        "|---|---|---|---|---|",
        *[
            f"| {description} | "
            + " | ".join(f"{metrics[f'{key}_{m}']:.3f}" for m in ("accuracy", "f1", "roc_auc", "specificity"))
            + " |"
            for key, description in SETS.items()
            if f"{key}_accuracy" in metrics and (key != "test_airline" or sources != ["airline"])
        ],
        "",
        "## Behavioural tests (CheckList suites, share passed)",
        "",
        *[
            f"- {c.name}: {metrics[f'behaviour_{c.name}']:.2f}"
            for c in behaviour.suite()
            if f"behaviour_{c.name}" in metrics
        ],
        "",
        "## Serving cost",
        "",
        f"{metrics.get('ms_per_tweet_single', float('nan')):.2f} ms for one tweet, "
        f"{metrics.get('ms_per_tweet_batched', float('nan')):.3f} ms a tweet in batches: the logged model "
        "as the service calls it, timed in the training run"
        + (", its int8 copy served" if metrics.get("served_int8") == 1 else "")
        + ". Served throughput: benchmarks/results/REPORT.md.",
        "",
        *french_section(metrics),
        "",
        *word_effects_section(effects),
        "",
        "## Known failure modes",
        "",
        *[
            f"- {c.name}: passes {metrics[f'behaviour_{c.name}']:.0%} of its behavioural cases"
            for c in behaviour.suite()
            if metrics.get(f"behaviour_{c.name}", 1) < WEAK_BELOW
        ],
        *[
            f"- Tweets unlike its training data: {metrics[f'{key}_accuracy']:.3f} accuracy on {key} against "
            f"{metrics['test_accuracy']:.3f} on its held-out split"
            for key in EXTERNAL_TEST_SETS
            if metrics.get(f"{key}_accuracy", 1) < metrics.get("test_accuracy", 0)
        ],
    ]
    if mistakes:
        lines += ["", "Its most confident mistakes on the held-out split's hand-labelled tweets:", ""]
        lines += [f"- P(positive) {m['prob_positive']:.2f}, labelled {m['label']}: {m['text']!r}" for m in mistakes]
    return "\n".join(lines) + "\n"


def french_section(metrics: dict[str, float]) -> list[str]:
    """How this version answers French tweets (core/french.py), as measured on the hand-written French set."""
    bar = settings().french_min_accuracy
    if ACCURACY_METRIC not in metrics:
        return [
            "## French tweets",
            "",
            "Not measured (Apertium was not installed where it was trained; `python -m train.french` measures it): "
            "French tweets get its English answer, flagged as not English.",
        ]
    accuracy = metrics[ACCURACY_METRIC]
    return [
        "## French tweets",
        "",
        "Answered through English: Apertium's offline translation scored by this model, averaged with Pattern's "
        "French lexicon; such an answer's `model` ends with `+fr`. On the hand-written French set's test split "
        f"(80 tweets, never trained or tuned on): accuracy {accuracy:.3f}, F1 "
        f"{metrics.get('french_test_f1', float('nan')):.3f}, specificity "
        f"{metrics.get('french_test_specificity', float('nan')):.3f}; "
        f"{metrics.get('french_ms_per_tweet', float('nan')):.1f} ms a tweet. "
        + (
            f"At or above TWEETS_FRENCH_MIN_ACCURACY ({bar:.2f}): servers answer French tweets this way."
            if accuracy >= bar
            else f"Below TWEETS_FRENCH_MIN_ACCURACY ({bar:.2f}): French tweets get its English answer, flagged."
        ),
        'Not covered: slang and idioms the translator does not know ("c\'est nul" comes out as "it is any"), '
        "regional French, tweets mixing French and English (identified as either), and other languages.",
    ]


def _date(run: Run) -> str:
    return datetime.fromtimestamp(run.info.start_time / 1000, UTC).strftime("%Y-%m-%d")


def confident_mistakes(predictions: list[dict], count: int = MISTAKES) -> list[dict]:
    """The ``count`` wrong predictions furthest from the cut (DECISION_CUT on the served, re-centred P(positive))."""
    wrong = [p for p in predictions if (p["prob_positive"] >= DECISION_CUT) != (p["label"] == 1)]
    return sorted(wrong, key=lambda p: -abs(p["prob_positive"] - DECISION_CUT))[:count]


def for_version(name: str, version: str) -> str:
    """The card of a registered version, from its run: metrics, parameters and held-out predictions."""
    client = mlflow.MlflowClient()
    run = client.get_run(client.get_model_version(name, version).run_id)
    try:
        frame = test_predictions(run.info.run_id)
    except (OSError, mlflow.exceptions.MlflowException):  # a run that logged none
        return render(name, version, run)
    clean = frame[~frame["noisy"].astype(bool)] if "noisy" in frame else frame  # emoticon labels' "mistakes" are noise
    try:
        effects = mlflow.load_table(WORD_EFFECTS, run_ids=[run.info.run_id])
    except (OSError, mlflow.exceptions.MlflowException):  # a run from before explanations
        effects = None
    return render(name, version, run, confident_mistakes(clean.to_dict("records")), effects)
