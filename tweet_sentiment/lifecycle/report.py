"""Read the tracked runs back: the README's results table and the comparison notebook use this."""

import math
import re
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from tweet_model import DECISION_CUT
from tweet_sentiment.core.config import EXTERNAL_TEST_SETS, ROOT
from tweet_sentiment.core.models import CHAMPION, ModelSpec
from tweet_sentiment.lifecycle import behaviour
from tweet_sentiment.lifecycle.tracking import EXPERIMENT, setup_mlflow


def champion_runs() -> pd.DataFrame:
    """One row per registered model of the experiment: its champion version's run, params and metrics."""
    setup_mlflow()
    client = MlflowClient()
    rows = []
    for model in client.search_registered_models():
        try:
            version = client.get_model_version_by_alias(model.name, CHAMPION)
        except mlflow.exceptions.MlflowException:
            continue
        run = client.get_run(version.run_id)
        if client.get_experiment(run.info.experiment_id).name != EXPERIMENT or "test_accuracy" not in run.data.metrics:
            continue
        rows.append(
            {
                "model": model.name,
                "version": version.version,
                "run_id": run.info.run_id,
                "family": run.data.tags.get("family", ""),
                "base": run.data.params.get("base", ""),
                "dataset": run.data.params.get("dataset", ""),
                "teacher": "" if run.data.params.get("teacher") in (None, "None") else run.data.params["teacher"],
                "phrase_rows": int(run.data.params.get("phrase_rows", 0)),
                "train_rows": int(run.data.params.get("train_rows", 0)),
                "commit": run.data.tags.get("mlflow.source.git.commit", ""),  # the code it was trained with
                **run.data.metrics,
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(["family", "model"]).reset_index(drop=True)  # logreg, lstm, transformer


def results_table(runs: pd.DataFrame) -> str:
    """Markdown: the decision threshold chosen on validation data; accuracy/F1/AUC/specificity on the held-out
    split, its airline tweets, TweetEval's validation split (what models are chosen on) and both external sets;
    then the behavioural pass rates."""
    sets = ["test", "test_airline", "tweeteval_val", *EXTERNAL_TEST_SETS]
    capabilities = [c.name for c in behaviour.suite()]
    header = ["model", "data", "train s", "threshold", "ms/tweet (1 / batched)"]
    header += [f"{s} acc / F1 / AUC / spec" for s in sets] + ["behaviour: " + " / ".join(capabilities)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, run in runs.iterrows():
        threshold = run.get("decision_threshold")  # on the raw P(positive); runs before it was chosen: the cut
        threshold = DECISION_CUT if threshold is None or pd.isna(threshold) else threshold
        cells = [
            f"`{run['model']}` v{run['version']}",
            run["dataset"]
            + (f" (teacher {run['teacher']})" if run["teacher"] else "")
            + (f" + {run['phrase_rows']:,} phrases" if run["phrase_rows"] else ""),
            f"{run['train_seconds']:.0f}",
            f"{threshold:.3f}",
            f"{run['ms_per_tweet_single']:.2f} / {run['ms_per_tweet_batched']:.3f}",
        ]
        for name in sets:
            name = name if f"{name}_accuracy" in run and pd.notna(run[f"{name}_accuracy"]) else "test"
            cells.append(" / ".join(f"{run[f'{name}_{m}']:.3f}" for m in ("accuracy", "f1", "roc_auc", "specificity")))
        rates = [run.get(f"behaviour_{c}") for c in capabilities]
        cells.append(" / ".join("-" if r is None or pd.isna(r) else f"{r:.2f}" for r in rates))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def readme_accuracy(model: str, readme: Path = ROOT / "README.md") -> float:
    """The held-out ("test") accuracy the README's results table gives ``model``'s champion."""
    lines = readme.read_text().splitlines()
    rows = [line for line in lines if line.startswith(f"| `{model}` v")]
    if not rows:
        raise ValueError(f"{readme.name}'s results table has no row for {model}")
    header = next(line for line in lines if line.startswith("| model |"))
    column = [cell.strip() for cell in header.split("|")].index("test acc / F1 / AUC / spec")
    return float(rows[0].split("|")[column].split("/")[0])


def check_against_readme(spec: str, z: float = 3.0, readme: Path = ROOT / "README.md") -> str:
    """Check that the version ``spec`` names scores on its held-out split what the README's results table
    gives for its model, within ``z`` standard errors of the difference of two accuracies on splits of that
    size (two trainings of one recipe differ by their random seeds and data order). Returns a one-line
    verdict; raises ValueError when it is off."""
    model = ModelSpec.parse(spec)
    client = MlflowClient()
    version = client.get_model_version(model.name, model.registered_version(client))
    run = client.get_run(version.run_id)
    accuracy, rows = run.data.metrics["test_accuracy"], int(run.data.params["test_rows"])
    expected = readme_accuracy(model.name, readme)
    tolerance = z * math.sqrt(2 * expected * (1 - expected) / rows)
    verdict = (
        f"{model.name}/{version.version} (run {version.run_id}): held-out accuracy {accuracy:.3f} on {rows:,} "
        f"tweets; README {expected:.3f}, tolerance ±{tolerance:.3f}"
    )
    if abs(accuracy - expected) > tolerance:
        raise ValueError(f"off the README's results table: {verdict}")
    return verdict


def update_readme(block: str, content: str) -> None:
    """Replace what stands between ``<!-- {block}:start -->`` and ``<!-- {block}:end -->`` in README.md."""
    readme = ROOT / "README.md"
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    text = readme.read_text()
    if start not in text:
        raise ValueError(f"README.md has no {start} marker")
    pattern = f"{re.escape(start)}.*?{re.escape(end)}"
    readme.write_text(re.sub(pattern, lambda _: f"{start}\n{content}\n{end}", text, flags=re.S))
