"""Regenerate the README's results table and the champions' model cards (docs/model_cards/) from MLflow.

python -m train.report
python -m train.report --check tweet-lstm@champion   # exit 1 if its held-out accuracy is off the table's
"""

import argparse
import subprocess

from tweet_sentiment.core.config import ROOT
from tweet_sentiment.core.models import ModelNotFound
from tweet_sentiment.lifecycle.figures import TRAINING, git, stamp
from tweet_sentiment.lifecycle.model_card import for_version
from tweet_sentiment.lifecycle.report import champion_runs, check_against_readme, results_table, update_readme
from tweet_sentiment.lifecycle.tracking import setup_mlflow

CARDS = ROOT / "docs" / "model_cards"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", metavar="SPEC", help="only check this version against the README's table")
    args = parser.parse_args(argv)
    if args.check:
        setup_mlflow()
        try:
            verdict = check_against_readme(args.check)
        except (ValueError, ModelNotFound) as error:
            raise SystemExit(f"error: {error}") from None
        print(verdict)
        return verdict
    runs = champion_runs()
    if runs.empty:
        raise SystemExit("no trained model in MLflow yet: run `python -m train` first")
    table = results_table(runs)
    # Stamped with the code the models were trained with (lifecycle/figures.py): the table, with the commit
    # every one of its runs descends from.
    update_readme("results", f"{stamp('make train', TRAINING, trained_at(*runs['commit']))}\n{table}")
    CARDS.mkdir(parents=True, exist_ok=True)
    for _, run in runs.iterrows():
        card = for_version(run["model"], run["version"])
        (CARDS / f"{run['model']}.md").write_text(f"{stamp('make train', TRAINING, trained_at(run['commit']))}\n{card}")
    print(table)
    return table


def trained_at(*commits: str) -> str:
    """The latest commit all of these descend from ("0", unknown, where a run recorded none)."""
    if not all(commits):
        return "0"
    try:
        return git("merge-base", "--octopus", *commits)[:12]
    except subprocess.CalledProcessError:  # a commit this clone does not have
        return "0"


if __name__ == "__main__":
    main()
