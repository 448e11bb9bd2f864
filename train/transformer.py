"""Train the transformer (tweet_sentiment/training/transformer.py); `--help` lists its flags."""

from tweet_sentiment.training.train import TrainedModel, main
from tweet_sentiment.training.transformer import FAMILY


def cli(argv: list[str] | None = None) -> TrainedModel:
    return main(FAMILY, argv)


if __name__ == "__main__":
    cli()
