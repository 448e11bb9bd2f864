"""Entry point for MLflow's models-from-code logging: no pickled class, just this file."""

import mlflow

from tweet_model.pyfunc import TweetSentimentModel

mlflow.models.set_model(TweetSentimentModel())
