"""Score a tweet archive on Spark with a registered model (tweet_sentiment/batch/scoring.py), and report its brands.

    python -m batch score tweet-lstm@champion --input tweets.parquet --output scored/
    python -m batch score tweet-lstm/3 --input mentions.csv --text-column body --output scored/ --partition-by day
    PYTHONPATH=. spark-submit --master yarn batch/__main__.py score tweet-lstm@champion \\
        --input hdfs:///archive/2026-12-03 --format json --output hdfs:///scored/2026-12-03
    python -m batch brands --input scored/ --time-column created_at --output brands/   # per brand and day

The scored output is Parquet: every input column, then label, prob_positive, model, model_version, model_alias,
language, warning, reason (why a row was not scored) and brands. The brand report is Parquet too (brand, day,
tweets, negative, share, surge: a day whose share the alert's rule finds surging against the 7 days before),
with its plot beside (brands.png, or --plot). Each appears whole or not at all. Scratch goes to a folder under
TMPDIR, removed at the end.
"""

import argparse
import logging
import sys
from pathlib import Path

from tweet_sentiment.batch.scoring import (
    BatchInputError,
    brand_counts,
    hadoop_target,
    log_to_mlflow,
    score_archive,
    spark_session,
    write_atomically,
)
from tweet_sentiment.core.models import ModelNotFound
from tweet_sentiment.lifecycle import buzz
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
    job.add_argument("--partitions", type=int, help="output files to write in parallel (default: Spark's)")
    job.add_argument("--partition-by", nargs="+", default=[], help="columns to partition the output folder by")
    job.add_argument("--log-to-mlflow", action="store_true", help="record the job (input, model, counts) in MLflow")
    report = commands.add_parser("brands", help="negative share per brand and day of a scored output, surges marked")
    report.add_argument("--input", required=True, help="a scored output (python -m batch score's)")
    report.add_argument("--time-column", required=True, help="the column holding when each tweet was posted")
    report.add_argument("--output", required=True, help="the Parquet folder to write; refused if it exists")
    report.add_argument("--plot", type=Path, help="the plot's file (default: the output's name + .png, here)")
    for command in (job, report):
        command.add_argument("--master", help="any Spark master (default: spark-submit's, else local[*])")
        command.add_argument("--overwrite", action="store_true", help="replace an existing output, once whole")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.command == "brands":
        return brands(args)
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


def brands(args: argparse.Namespace) -> int:
    """The brand report of a scored output: counted on Spark, judged per day by the alert's rule, written whole."""
    rule = buzz.SurgeRule(short="1d", baseline="7d")
    try:
        with spark_session(args.master) as spark:
            hadoop_target(spark, args.output, args.overwrite)
            shares = buzz.mark_surges(brand_counts(spark, args.input, args.time_column, "day"), rule, "1D")
            write_atomically(spark.createDataFrame(shares), args.output, args.overwrite)
    except BatchInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    plot = args.plot or Path(f"{Path(args.output.rstrip('/')).name}.png")
    buzz.plot(shares, f"Negative share per brand and day (red: a surge against the {rule.baseline} before)").savefig(
        plot
    )
    for brand, group in shares.groupby("brand"):
        days = ", ".join(f"{day:%Y-%m-%d}" for day in group.loc[group["surge"], "time"]) or "none"
        print(f"{brand:24} {int(group['tweets'].sum()):9,} tweets; surging days: {days}")
    print(f"  output: {args.output}\n  plot: {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
