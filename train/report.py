"""Regenerate the README's results table from the champion runs in MLflow.  ``python -m train.report``"""

from tweet_sentiment.report import champion_runs, results_table, update_readme


def main() -> str:
    runs = champion_runs()
    if runs.empty:
        raise SystemExit("no trained model in MLflow yet: run `python -m train` first")
    table = results_table(runs)
    update_readme("results", table)
    print(table)
    return table


if __name__ == "__main__":
    main()
