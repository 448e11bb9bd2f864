"""The service's own Prometheus series (BentoML adds its request metrics; following and shadow count their own).

Every label value comes from the server's configuration (models it was started with, brands configured) or from
a fixed set, never from a client's text: no request can create series.
"""

import bentoml

predictions_total = bentoml.metrics.Counter(
    name="tweet_predictions_total",
    documentation="Predictions served, by predicted label and model tag",
    labelnames=["label", "model"],
)
model_batch_size = bentoml.metrics.Histogram(
    name="tweet_model_batch_size",
    documentation="Tweets per model call, by model as requests name it: adaptive batching merges concurrent "
    "requests (64 at most when on)",
    labelnames=["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
feedback_total = bentoml.metrics.Counter(
    name="tweet_feedback_total",
    documentation="Feedback on predictions, by verdict (right/wrong) and model tag",
    labelnames=["verdict", "model"],
)
brand_predictions_total = bentoml.metrics.Counter(
    name="tweet_brand_predictions_total",
    documentation="Answered tweets that name a configured brand (TWEETS_BRANDS_FILE), by brand and predicted label",
    labelnames=["brand", "label"],
)
