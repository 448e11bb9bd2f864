"""Drift report of a served model: its recent inputs and predictions against its own training data.

    python drift_report.py                      # the model that answered last, its whole log
    python drift_report.py --since 24h --model tweet-lstm/3@champion --log-mlflow

Writes drift_report.html and drift_summary.json (into --out, default ./drift) and prints the verdicts.
"""

import argparse
import logging
import sys
from pathlib import Path

from tweet_sentiment.core.prediction_log import PredictionLogError, read_prediction_log
from tweet_sentiment.lifecycle import drift


def main(argv: list[str] | None = None) -> drift.DriftReport:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-dir", type=Path, help="folder of the data.*.log files (default: the service's)")
    parser.add_argument("--model", help="served model label, e.g. tweet-lstm/3@champion (default: the last one)")
    parser.add_argument("--since", type=drift.parse_since, help="window start: 30m, 24h, 7d, or an ISO date-time")
    parser.add_argument("--out", type=Path, default=Path("drift"), help="folder for the HTML and JSON")
    parser.add_argument("--log-mlflow", action="store_true", help="record the report as an MLflow run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        served = read_prediction_log(args.log_dir)
        rows, model = drift.window(served, args.model, args.since)
        report = drift.compare(drift.load_reference(model), rows, len(served.bad_lines))
    except (drift.DriftError, PredictionLogError) as error:
        sys.exit(f"error: {error}")
    files = drift.write(report, args.out)
    for feature in report.features:
        print(f"{feature.name:22} PSI {feature.psi:6.3f}  {feature.verdict}")
    print(f"{'DRIFT' if report.drift else 'no drift'} in {report.rows} predictions of {model}; report: {files[0]}")
    if args.log_mlflow:
        print(f"logged to MLflow run {drift.log_to_mlflow(report, files)}")
    return report


if __name__ == "__main__":
    main()
