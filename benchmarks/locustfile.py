"""Locust users for the tweet service (and the echo reference, which has the same API).

    locust -f benchmarks/locustfile.py --headless -u 32 -r 32 -t 30s --host http://127.0.0.1:3000 OneTweet

Tweets are real airline tweets, of every length; users send requests back to back (no think time),
so ``-u`` is the concurrency, and wait what a 503's Retry-After asks, as HTTP clients' retries do.
FastHttpUser (geventhttpclient) costs a fraction of the CPU of the default HttpUser, which matters
when locust shares the 2 cores with the server it measures.
``--latencies-file PATH`` writes every request's start (s since the first), response time (ms) and whether
it failed (1) to PATH at the end, one a line: locust's own percentiles are of times rounded to 2 significant
digits, and its CSV misses the requests of the last moments.
"""

import random

import gevent
from locust import FastHttpUser, events, task

from tweet_sentiment.training.data import load_airline

TWEETS = load_airline()["text"].tolist()
latencies: list[tuple[float, float, bool]] = []  # (start, response time ms, failed)


@events.init_command_line_parser.add_listener
def _add_latencies_file(parser) -> None:
    parser.add_argument("--latencies-file", default="", help="write each request's start and time here")


def _record_latency(start_time: float, response_time: float, exception: Exception | None, **_) -> None:
    latencies.append((start_time, response_time, exception is not None))


@events.init.add_listener
def _start_the_run_time_from_now(**_) -> None:
    """gevent times ``--run-time`` from the loop's cached clock, which stands still until the loop first runs:
    when importing this file and its data takes longer than the run time (a loaded machine), the run ends before
    its first request. ``init`` fires just before locust starts that timer."""
    gevent.get_hub().loop.update_now()


@events.init.add_listener
def _record_latencies_if_asked(environment, **_) -> None:
    if environment.parsed_options and environment.parsed_options.latencies_file:
        events.request.add_listener(_record_latency)


@events.quitting.add_listener
def _write_latencies(environment, **_) -> None:
    if path := environment.parsed_options.latencies_file:
        first = min((start for start, _, _ in latencies), default=0)
        with open(path, "w") as file:
            file.writelines(f"{start - first:.3f} {ms:.3f} {failed:d}\n" for start, ms, failed in latencies)


class TweetUser(FastHttpUser):
    abstract = True
    retry_after = 0.0  # seconds the server's last 503 asked to wait

    def wait_time(self) -> float:
        """None between requests; after a 503, what its Retry-After asks, as an HTTP client's retries do (urllib3's,
        by default): a client that retries at once only adds the work of refusing it to an overloaded server."""
        wait, self.retry_after = self.retry_after, 0.0
        return wait

    def on_start(self) -> None:
        self.random = random.Random(hash(self) % 1000)

    def send(self, path: str, body: dict, name: str):
        response = self.client.post(path, json=body, name=name)
        if response.status_code == 503:
            self.retry_after = float(response.headers.get("Retry-After") or 0)
        return response

    def tweets(self, n: int) -> list[str]:
        return self.random.sample(TWEETS, n)


class Tweets(TweetUser):
    """Requests of ``size`` tweets as a list under ``key``, to ``path``."""

    abstract = True
    path, key, size = "/predict_batch", "tweets", 1

    @task
    def post(self) -> None:
        self.send(self.path, {self.key: self.tweets(self.size)}, f"{self.path[1:]}[{self.size}]")


class OneTweet(Tweets):
    """Single-tweet requests to the batch endpoint: the server's adaptive batching merges them."""


class ManyTweets(Tweets):
    """Requests of 32 tweets each, as a client that batches on its own side."""

    size = 32


class MaxTweets(Tweets):
    """Requests of 256 tweets each, the most a request may hold: the server's best batch shape."""

    size = 256


class Predict(TweetUser):
    """The one-tweet endpoint (`{"tweet": ...}`): adaptive batching merges these too."""

    @task
    def predict(self) -> None:
        self.send("/predict", {"tweet": self.tweets(1)[0]}, "predict")


class Explain(TweetUser):
    """Why a label (`/explain`, one tweet): a model call of the tweet's words' variants, batched apart."""

    @task
    def explain(self) -> None:
        self.send("/explain", {"tweet": self.tweets(1)[0]}, "explain")


class PredictBesideExplanations(Predict):
    """`/predict`, run with Explain: locust weighs the classes, nine users of this one to one of Explain."""

    weight = 9


class Feedback(TweetUser):
    """Wrong-prediction reports: every one counts toward the alert window, which fills up as the load goes on."""

    @task
    def feedback(self) -> None:
        body = {"tweet": self.tweets(1)[0], "predicted_label": "positive", "wrong": True}
        self.send("/feedback", body, "feedback")


class Reporter(TweetUser):
    """Asks for one tweet, then reports on the answer by its id (wrong one time in five), as the Streamlit page
    does: the feedback the shadow challenger is judged on."""

    @task
    def predict_and_report(self) -> None:
        tweet = self.tweets(1)[0]
        answer = self.send("/predict", {"tweet": tweet}, "predict")
        if answer.status_code != 200:  # counted as failed by locust
            return
        prediction = answer.json()
        body = {"tweet": tweet, "predicted_label": prediction["label"], "prediction_id": prediction["id"]}
        self.send("/feedback", {**body, "wrong": self.random.random() < 0.2}, "feedback")


class MLflowOneTweet(Tweets):
    """One tweet per request to `mlflow models serve` (the peer a user could run instead)."""

    path, key = "/invocations", "inputs"


class MLflowManyTweets(MLflowOneTweet):
    """32 tweets per request to `mlflow models serve`."""

    size = 32
