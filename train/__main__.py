"""Train, then manage what is served.

    python -m train [logreg lstm transformer] [--dataset D] [--sample N] [--with-feedback]
    python -m train promote tweet-lstm 3 --reason "better on last week's feedback"
    python -m train rollback tweet-lstm --reason "complaints after the release"
    python -m train show tweet-lstm@champion
    python -m train image-labels tweet-sentiment:latest      # the labels `make image` gives the image
    python -m train compare tweet-lstm --live --since 7d     # champion against challenger, on live feedback
    python -m train promote tweet-lstm 4 --if-better-live --since 7d

Flags after the family names go to every trainer, so only the shared ones (--dataset, --sample,
--with-feedback, --no-bento) fit here; use ``python -m train.lstm --help`` for a model's own flags.
A running server started on NAME@ALIAS follows the alias within TWEETS_ALIAS_POLL_SECONDS; an image packs its
model: rebuild the Bento and roll the deployment to serve a new champion there.
"""

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path

from tweet_sentiment.core.models import ModelNotFound, image_labels, resolve_model
from tweet_sentiment.core.prediction_log import PredictionLogError
from tweet_sentiment.lifecycle import live
from tweet_sentiment.lifecycle.drift import DriftError, parse_since
from tweet_sentiment.lifecycle.promotion import promote, rollback
from tweet_sentiment.lifecycle.tracking import setup_mlflow
from tweet_sentiment.training.train import FAMILIES
from tweet_sentiment.training.train import main as train_family


def train(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("families", nargs="*", metavar="family", help=f"any of {list(FAMILIES)} (default: all)")
    args, rest = parser.parse_known_args(argv)
    unknown = set(args.families) - set(FAMILIES)
    if unknown:
        parser.error(f"unknown model families {sorted(unknown)}; choose from {list(FAMILIES)}")
    for family in args.families or FAMILIES:
        train_family(FAMILIES[family], rest)


def manage(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m train", description="Promote, roll back, show or compare models.", epilog=live.__doc__
    )
    commands = parser.add_subparsers(dest="command", required=True)
    promote_cmd = commands.add_parser("promote", help="give a version the champion alias")
    promote_cmd.add_argument("name", help="registered model, e.g. tweet-lstm")
    promote_cmd.add_argument("version")
    promote_cmd.add_argument(
        "--if-better-live",
        action="store_true",
        help="only if, as the challenger, it was better on live feedback",
    )
    rollback_cmd = commands.add_parser("rollback", help="give the champion alias back to the previous champion")
    rollback_cmd.add_argument("name")
    for command in (promote_cmd, rollback_cmd):
        command.add_argument("--reason", help="why: recorded on the version (required, except with --if-better-live)")
        command.add_argument("--by", help="who (default: the user running this)")
    show_cmd = commands.add_parser("show", help="the model a tag or alias resolves to (exit 1 if none)")
    show_cmd.add_argument("spec", help="name@alias or a BentoML tag")
    labels_cmd = commands.add_parser(
        "image-labels", help="a Bento's image labels (its model's version and run) as `bentoml containerize` options"
    )
    labels_cmd.add_argument("bento", help="a Bento tag, e.g. tweet-sentiment:latest")
    compare_cmd = commands.add_parser("compare", help="champion against challenger on live labelled feedback")
    compare_cmd.add_argument("name", help="registered model whose champion was served, e.g. tweet-lstm")
    compare_cmd.add_argument("--live", action="store_true", required=True, help="on live traffic and feedback")
    for command in (compare_cmd, promote_cmd):
        command.add_argument("--since", type=parse_since, help="window start: 30m, 24h, 7d, or an ISO date-time")
        command.add_argument("--log-dir", type=Path, help="folder of the prediction log's data.*.log files")
    promote_cmd.add_argument("--alpha", type=float, help="significance (default: TWEETS_LIVE_ALPHA)")
    promote_cmd.add_argument("--min-labelled", type=int, help="labelled tweets needed (TWEETS_LIVE_MIN_LABELLED)")
    args = parser.parse_args(argv)
    if args.command in ("promote", "rollback") and not (args.reason or getattr(args, "if_better_live", False)):
        parser.error(f"{args.command} needs --reason")

    setup_mlflow()
    try:
        if args.command == "promote" and args.if_better_live:
            decision = live.promote_if_better_live(
                args.name, args.version, args.since, args.alpha, args.min_labelled, args.by, args.log_dir
            )
            print(f"{'promoted' if decision.promoted else 'not promoted'}: {decision.reason}")
        elif args.command == "promote":
            promote(args.name, args.version, args.reason, args.by)
        elif args.command == "rollback":
            rollback(args.name, args.reason, args.by)
        elif args.command == "compare":
            compare_live(args.name, args.since, args.log_dir)
        elif args.command == "image-labels":
            print(" ".join(f"--opt label={key}={value}" for key, value in image_labels(args.bento).items()))
        else:
            print(resolve_model(args.spec))
    except (ModelNotFound, DriftError, PredictionLogError) as error:
        sys.exit(f"error: {error}")


def compare_live(name: str, since: datetime | None, log_dir: Path | None) -> None:
    """Print and log to MLflow every champion-challenger pair of ``name`` in the window."""
    comparisons = live.compare(name, since, log_dir)
    if not comparisons:
        sys.exit(
            f"error: no answer of {name} scored by a challenger in the prediction log (serve one with "
            "--arg challenger=...)"
        )
    for comparison in comparisons:
        print(comparison.summary())
        print(f"  logged to MLflow run {live.log_comparison(comparison, since)}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    (manage if argv[:1] and argv[0] in ("promote", "rollback", "show", "compare", "image-labels") else train)(argv)


if __name__ == "__main__":
    main()
