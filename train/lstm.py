"""Train the lstm model (tweet_sentiment/training/lstm.py): ``python -m train.lstm --help`` lists its flags."""

from tweet_sentiment.training.lstm import FAMILY
from tweet_sentiment.training.train import TrainedModel, main


def cli(argv: list[str] | None = None) -> TrainedModel:
    return main(FAMILY, argv)


if __name__ == "__main__":
    cli()
