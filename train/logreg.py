"""Train the logreg model (tweet_sentiment/training/logreg.py): ``python -m train.logreg --help`` lists its flags."""

from tweet_sentiment.training.logreg import FAMILY
from tweet_sentiment.training.train import TrainedModel, main


def cli(argv: list[str] | None = None) -> TrainedModel:
    return main(FAMILY, argv)


if __name__ == "__main__":
    cli()
