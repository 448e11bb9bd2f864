"""Score a tweet archive on Spark with a registered model (tweet_sentiment/batch/scoring.py).

    python -m batch score tweet-lstm@champion --input tweets.parquet --output scored/
    python -m batch score tweet-lstm/3 --input mentions.csv --text-column body --output scored/ --partition-by day
    PYTHONPATH=. spark-submit --master yarn batch/__main__.py score tweet-lstm@champion \\
        --input hdfs:///archive/2026-12-03 --format json --output hdfs:///scored/2026-12-03

The output is Parquet: every input column, then label, prob_positive, model, model_version, model_alias,
language, warning and reason (why a row was not scored). It appears whole or not at all.
"""

import argparse
import logging
import sys

from tweet_sentiment.batch.scoring import BatchInputError, log_to_mlflow, score_archive, spark_session
from tweet_sentiment.core.models import ModelNotFound
from tweet_sentiment.lifecycle.tracking import setup_mlflow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m batch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    job = commands.add_parser("score", help="score an archive of tweets")
    job.add_argument("model", help="a registered model: NAME@ALIAS (tweet-lstm@champion) or NAME/VERSION")
    job.add_argument("--input", required=True, help="a file or folder: Parquet, CSV (with a header) or JSON lines")
    job.add_argument("--output", required=True, help="the Parquet folder to write; refused if it exists")
    job.add_argument("--text-column", default="text", help="the column holding the tweet (default: text)")
    job.add_argument("--format", choices=["parquet", "csv", "json"], help="the input's (default: from its name)")
    job.add_argument("--master", help="any Spark master (default: spark-submit's, else local[*])")
    job.add_argument("--overwrite", action="store_true", help="replace an existing output, once the new one is whole")
    job.add_argument("--partitions", type=int, help="output files to write in parallel (default: Spark's)")
    job.add_argument("--partition-by", nargs="+", default=[], help="columns to partition the output folder by")
    job.add_argument("--log-to-mlflow", action="store_true", help="record the job (input, model, counts) in MLflow")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    setup_mlflow()
    try:
        with spark_session(args.master) as spark:
            summary = score_archive(
                spark,
                args.model,
                args.input,
                args.output,
                text_column=args.text_column,
                fmt=args.format,
                overwrite=args.overwrite,
                partitions=args.partitions,
                partition_by=tuple(args.partition_by),
            )
    except (BatchInputError, ModelNotFound) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary)
    if args.log_to_mlflow:
        print(f"  MLflow run: {log_to_mlflow(summary, args.input)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
