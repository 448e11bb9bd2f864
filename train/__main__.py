"""Train, then manage what is served.

    python -m train [logreg lstm transformer] [--dataset D] [--sample N] [--with-feedback]
    python -m train promote tweet-lstm 3 --reason "better on last week's feedback"
    python -m train rollback tweet-lstm --reason "complaints after the release"
    python -m train show tweet-lstm@champion

Flags after the family names go to every trainer, so only the shared ones (--dataset, --sample,
--with-feedback, --no-bento) fit here; use ``python -m train.lstm --help`` for a model's own flags.
A running server keeps the model it started with: restart it (or rebuild the Bento and roll the
deployment) to serve a new champion.
"""

import argparse
import logging
import sys

from tweet_sentiment.registry import ModelNotFound, promote, resolve_model, rollback
from tweet_sentiment.tracking import setup_mlflow
from tweet_sentiment.train import FAMILIES
from tweet_sentiment.train import main as train_family


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
    parser = argparse.ArgumentParser(prog="python -m train", description="Promote, roll back, or show a model.")
    commands = parser.add_subparsers(dest="command", required=True)
    promote_cmd = commands.add_parser("promote", help="give a version the champion alias")
    promote_cmd.add_argument("name", help="registered model, e.g. tweet-lstm")
    promote_cmd.add_argument("version")
    rollback_cmd = commands.add_parser("rollback", help="give the champion alias back to the previous champion")
    rollback_cmd.add_argument("name")
    for command in (promote_cmd, rollback_cmd):
        command.add_argument("--reason", required=True, help="why: recorded on the version in the registry")
        command.add_argument("--by", help="who (default: the user running this)")
    show_cmd = commands.add_parser("show", help="the model a tag or alias resolves to (exit 1 if none)")
    show_cmd.add_argument("spec", help="name@alias or a BentoML tag")
    args = parser.parse_args(argv)

    setup_mlflow()
    try:
        if args.command == "promote":
            promote(args.name, args.version, args.reason, args.by)
        elif args.command == "rollback":
            rollback(args.name, args.reason, args.by)
        else:
            print(resolve_model(args.spec))
    except ModelNotFound as error:
        sys.exit(f"error: {error}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    (manage if argv[:1] and argv[0] in ("promote", "rollback", "show") else train)(argv)


if __name__ == "__main__":
    main()
