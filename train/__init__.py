"""Trainers: one file per model family, each a thin layer over ``tweet_sentiment.training.train``."""
