"""Train several models in a row: ``python -m train [logreg lstm transformer] [--dataset D] [--sample N]``.

Flags after the names go to every trainer, so only the shared ones (--dataset, --sample,
--no-bento) fit here; use ``python -m train.lstm --help`` for a model's own flags.
"""

import argparse

from train import logreg, lstm, transformer

TRAINERS = {"logreg": logreg.cli, "lstm": lstm.cli, "transformer": transformer.cli}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("families", nargs="*", metavar="family", help=f"any of {list(TRAINERS)} (default: all)")
    args, rest = parser.parse_known_args()
    unknown = set(args.families) - set(TRAINERS)
    if unknown:
        parser.error(f"unknown model families {sorted(unknown)}; choose from {list(TRAINERS)}")
    for family in args.families or TRAINERS:
        TRAINERS[family](rest)


if __name__ == "__main__":
    main()
