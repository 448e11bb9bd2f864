"""Read the tracked runs back: the README's results table and the comparison notebook use this."""

import json
import re

import mlflow
import pandas as pd
from mlflow import MlflowClient

from tweet_sentiment.config import MODEL_FAMILIES, ROOT
from tweet_sentiment.data import EXTERNAL_TEST_SETS
from tweet_sentiment.registry import CHAMPION
from tweet_sentiment.tracking import EXPERIMENT, setup_mlflow


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
                "train_rows": int(run.data.params.get("train_rows", 0)),
                **run.data.metrics,
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("family", key=lambda f: f.map(MODEL_FAMILIES.index)).reset_index(drop=True)


def results_table(runs: pd.DataFrame) -> str:
    """Markdown: accuracy/F1/AUC/specificity on the internal test split and both external sets."""
    sets = ["test", *EXTERNAL_TEST_SETS]
    header = ["model", "train s", "ms/tweet (1 / batched)"] + [f"{s} acc / F1 / AUC / spec" for s in sets]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, run in runs.iterrows():
        cells = [
            f"`{run['model']}` v{run['version']}",
            f"{run['train_seconds']:.0f}",
            f"{run['ms_per_tweet_single']:.2f} / {run['ms_per_tweet_batched']:.3f}",
        ]
        cells += [
            " / ".join(f"{run[f'{s}_{m}']:.3f}" for m in ("accuracy", "f1", "roc_auc", "specificity")) for s in sets
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_predictions(run_id: str) -> pd.DataFrame:
    """The logged internal-test predictions of a run: text, label, prob_positive."""
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="predictions_test.json")
    with open(path) as file:
        table = json.load(file)
    return pd.DataFrame(table["data"], columns=table["columns"])


def update_readme(block: str, content: str) -> None:
    """Replace what stands between ``<!-- {block}:start -->`` and ``<!-- {block}:end -->`` in README.md."""
    readme = ROOT / "README.md"
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    text = readme.read_text()
    if start not in text:
        raise ValueError(f"README.md has no {start} marker")
    pattern = f"{re.escape(start)}.*?{re.escape(end)}"
    readme.write_text(re.sub(pattern, lambda _: f"{start}\n{content}\n{end}", text, flags=re.S))
