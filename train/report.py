"""Regenerate the README's results table and the champions' model cards (docs/model_cards/) from MLflow.

python -m train.report
"""

from tweet_sentiment.config import ROOT
from tweet_sentiment.model_card import for_version
from tweet_sentiment.report import champion_runs, results_table, update_readme

CARDS = ROOT / "docs" / "model_cards"


def main() -> str:
    runs = champion_runs()
    if runs.empty:
        raise SystemExit("no trained model in MLflow yet: run `python -m train` first")
    table = results_table(runs)
    update_readme("results", table)
    CARDS.mkdir(parents=True, exist_ok=True)
    for _, run in runs.iterrows():
        (CARDS / f"{run['model']}.md").write_text(for_version(run["model"], run["version"]))
    print(table)
    return table


if __name__ == "__main__":
    main()
