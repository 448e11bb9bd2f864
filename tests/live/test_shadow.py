"""Champion and challenger: shadow scoring off the request path, prediction ids, the live comparison and
promotion on its evidence (tweet_sentiment/shadow.py, tweet_sentiment/live.py)."""

import asyncio
import itertools
import multiprocessing
import os
import time
from functools import partial

import httpx
import pytest
from mlflow import MlflowClient
from pydantic import TypeAdapter

from harness.servers import busy_cores, eventually, running_server
from train.__main__ import main as train_cli
from tweet_model.pyfunc import load_predict_proba
from tweet_sentiment.core.prediction_log import read_prediction_log
from tweet_sentiment.lifecycle import live
from tweet_sentiment.lifecycle.promotion import champion_version
from tweet_sentiment.serve.loading import PredictionIds, PredictProba, pyfunc_path
from tweet_sentiment.serve.schemas import Predictions
from tweet_sentiment.serve.shadow import ChallengerProcess, Shadow
from tweet_sentiment.training.data import load_airline

TWEETS = [f"flight {i} was {'great, thanks' if i % 3 else 'late again'}" for i in range(24)]


@pytest.fixture
def loop():
    """One event loop for a test: the service's batching dispatcher stays on the loop it first ran on."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def answers(svc, tweets: list[str], loop, one_by_one: bool = False) -> list:
    """The service's answers to ``tweets``, sent 4 a request, all at once (merged into few model calls), or
    one request after the other (a model call each)."""

    async def send():
        requests = [svc.predict_batch(tweets[i : i + 4]) for i in range(0, len(tweets), 4)]
        return [await request for request in requests] if one_by_one else await asyncio.gather(*requests)

    encoded = loop.run_until_complete(send())
    return [prediction for batch in encoded for prediction in TypeAdapter(Predictions).validate_json(batch.body)]


def test_prediction_ids_are_unique_across_processes(service_module):
    first, second = PredictionIds(), PredictionIds()  # two workers, or one restarted
    ids = first.take(1000) + second.take(1000)
    assert len(set(ids)) == 2000


def stuck(release) -> PredictProba:
    """A challenger (loaded in its own process) that answers 0.5, after its warm-up call only once ``release``
    is set."""
    calls = itertools.count()
    return lambda tweets: (next(calls) == 0 or release.wait(60)) and [0.5] * len(tweets)


def test_a_full_challenger_queue_skips_and_counts_and_leaves_the_champion_alone(service_module, loop):
    svc = service_module.TweetSentiment()
    alone = answers(svc, TWEETS, loop)
    release = multiprocessing.get_context("spawn").Event()
    svc.answering.shadow = Shadow(partial(stuck, release), "tweet-lstm/99@challenger", svc.answering.log, capacity=1)
    svc.answering.shadow.start()
    shadowed = answers(svc, TWEETS, loop, one_by_one=True)  # the challenger holds a call, the others skip
    assert [a.label for a in shadowed] == [a.label for a in alone]
    assert [a.prob_positive for a in shadowed] == pytest.approx([a.prob_positive for a in alone], abs=1e-6)
    assert svc.answering.shadow.status().skipped == len(TWEETS) - 4  # all but the first call of 4 tweets
    release.set()
    svc.answering.shadow.stop()
    status = svc.answering.shadow.status()
    assert (status.scored, status.queued) == (4, 0)


def test_a_challenger_that_cannot_be_loaded_stops_the_server_at_start(trained):
    with pytest.raises(RuntimeError) as failed, running_server("challenger=tweet-nope@challenger", timeout=120):
        pass
    assert "the challenger 'tweet-nope@challenger' cannot be served: no registered model 'tweet-nope'" in str(
        failed.value
    )


def dies_after_warm_up() -> PredictProba:
    """A challenger whose process dies on its first call after the warm-up (a crash, an out-of-memory kill)."""
    calls = itertools.count()
    return lambda tweets: [0.5] * len(tweets) if next(calls) == 0 else os._exit(3)


def test_a_challenger_that_dies_loses_no_answer_and_the_rest_are_logged_without_it():
    records = []
    shadow = Shadow(dies_after_warm_up, "m/2", lambda *r: records.append(r), capacity=4)
    shadow.start()
    assert shadow.offer(["a-1", "a-2"], ["good", "bad"], [0.8, 0.3], "m/1")
    shadow.stop()  # the sender finds the process gone, and logs the call with the champion's answers only
    assert records == [(["a-1", "a-2"], ["good", "bad"], [0.8, 0.3], None, "m/1")]
    assert not shadow.offer(["a-3"], ["late"], [0.6], "m/1")  # gone: the caller logs it itself
    status = shadow.status()
    assert (status.failed, status.scored, status.queued) == (3, 0, 0)


def constant(p: float) -> PredictProba:
    return lambda tweets: [p] * len(tweets)


def test_a_replaced_challenger_scores_from_the_next_call_and_its_process_ends():
    """What following the challenger's alias does when it moves: the new version, started and warm, takes over
    between two calls; every call is scored once, by one version, and logged under that version's label."""
    records = []
    shadow = Shadow(partial(constant, 0.2), "m/1@challenger", lambda *r: records.append((shadow.label, r)), 4)
    shadow.start()
    old = shadow.challenger
    shadow.offer(["a-1"], ["good"], [0.8], "m/1")
    assert eventually(lambda: bool(records), within=30)
    shadow.replace(ChallengerProcess(partial(constant, 0.9), "m/2@challenger").start())
    assert eventually(lambda: shadow.label == "m/2@challenger", within=30)
    shadow.offer(["a-2"], ["bad"], [0.3], "m/1")
    shadow.stop()
    assert records == [
        ("m/1@challenger", (["a-1"], ["good"], [0.8], [0.2], "m/1")),
        ("m/2@challenger", (["a-2"], ["bad"], [0.3], [0.9], "m/1")),
    ]
    assert not old.process.is_alive() and not shadow.challenger.process.is_alive()
    assert shadow.status().scored == 1  # compared anew since the replacement


def answers_late(seconds: float) -> PredictProba:
    """A challenger that answers 0.5, after its warm-up call only ``seconds`` later."""
    calls = itertools.count()
    return lambda tweets: (next(calls) == 0 or not time.sleep(seconds)) and [0.5] * len(tweets)


def test_a_challenger_that_does_not_answer_is_killed_on_stop_and_the_call_logged_with_both_cores_busy(caplog):
    records = []
    shadow = Shadow(partial(answers_late, 600), "m/2@challenger", lambda *r: records.append(r), capacity=4)
    shadow.start()
    with busy_cores():
        assert shadow.offer(["a-1"], ["good"], [0.8], "m/1")
        assert eventually(lambda: not shadow.gathered, within=10)  # sent: the challenger holds it
        started = time.monotonic()
        shadow.stop(timeout=2)
        assert time.monotonic() - started < 30 and not shadow.challenger.process.is_alive()
    assert records == [(["a-1"], ["good"], [0.8], None, "m/1")]  # logged with the champion's answer alone
    assert "m/2@challenger (pid" in caplog.text and "is killed" in caplog.text


def test_calls_of_two_champion_versions_gathered_together_are_logged_each_under_its_own():
    records = []
    shadow = Shadow(partial(constant, 0.2), "m/9@challenger", lambda *r: records.append(r), capacity=4, tick=1)
    shadow.start()
    shadow.offer(["a-1"], ["good"], [0.8], "m/1@champion")
    shadow.offer(["a-2"], ["bad"], [0.3], "m/2@champion")  # the champion was swapped between the two calls
    shadow.stop()
    assert records == [
        (["a-1"], ["good"], [0.8], [0.2], "m/1@champion"),
        (["a-2"], ["bad"], [0.3], [0.2], "m/2@champion"),
    ]


def test_feedback_is_judged_by_id_or_tweet_once_even_before_the_challenger_scored_it():
    go = multiprocessing.get_context("spawn").Event()
    records = []
    shadow = Shadow(partial(stuck, go), "m/2", lambda *r: records.append(r), capacity=4)
    shadow.start()
    shadow.offer(["a-1", "a-2"], ["good", "bad"], [0.8, 0.3], "m/1")
    assert not shadow.judge("a-1", "good", "negative")  # not scored yet: judged once it is
    go.set()
    shadow.stop()
    assert records == [(["a-1", "a-2"], ["good", "bad"], [0.8, 0.3], [0.5, 0.5], "m/1")]
    assert shadow.judge(None, "bad", "negative")  # by the tweet
    assert not shadow.judge("a-1", "good", "negative")  # once
    status = shadow.status()
    assert (status.labelled, status.champion_accuracy, status.challenger_accuracy) == (2, 0.5, 0.0)
    assert (status.scored, status.agreement) == (2, 0.5)  # 0.5 is positive: the challenger agrees on "good"


def test_a_challenger_equal_to_the_champion_is_not_promoted(service_module, trained, tmp_path, monkeypatch, loop):
    monkeypatch.setenv("TWEETS_FEEDBACK_DB", str(tmp_path / "feedback.db"))  # not the session's alert window
    svc = service_module.TweetSentiment()
    lstm = trained["lstm"]
    itself = partial(load_predict_proba, pyfunc_path(lstm.bento_tag))  # equal to the champion by construction
    svc.answering.shadow = Shadow(itself, svc.answering.model_label, svc.answering.log, capacity=64)
    svc.answering.shadow.start()
    tweets = load_airline()["text"].head(240).tolist()
    predictions = answers(svc, tweets, loop)
    svc.answering.shadow.stop()
    for tweet, prediction in zip(tweets, predictions, strict=True):
        svc.feedback(tweet, prediction.label, wrong=len(tweet) % 4 == 0, prediction_id=prediction.id)
    assert svc.answering.shadow.status().labelled == len(tweets)

    decision = live.promote_if_better_live(lstm.name, lstm.version, min_labelled=100)
    assert not decision.promoted and "not better" in decision.reason
    assert str(champion_version(lstm.name).version) == lstm.version


def test_decide_live_needs_the_evidence_it_states():
    def pair(labelled: int, only_champion: int, only_challenger: int) -> live.LiveComparison:
        return live.LiveComparison(
            "m/1@champion", "m/2@challenger", labelled, labelled, labelled, 0, 0, only_champion, only_challenger
        )

    assert live.decide_live(pair(300, 5, 25), alpha=0.05, min_labelled=200).promoted
    assert not live.decide_live(pair(150, 5, 25), alpha=0.05, min_labelled=200).promoted  # too few labelled
    assert not live.decide_live(pair(300, 15, 15), alpha=0.05, min_labelled=200).promoted  # equal
    assert not live.decide_live(pair(300, 10, 16), alpha=0.05, min_labelled=200).promoted  # better, not significant
    assert not live.decide_live(pair(300, 25, 5), alpha=0.05, min_labelled=200).promoted  # worse


def test_a_better_challenger_is_found_on_live_feedback_across_a_restart_and_promoted(
    trained, tmp_path, monkeypatch, capsys
):
    """Real servers: traffic with a challenger, a restart, then feedback naming answers from before it (by id,
    or by the tweet alone) where the challenger is known to be right; compare finds it, and it is promoted."""
    from train import logreg

    champion = trained["logreg"]
    challenger = logreg.cli(["--sample", "120"])  # another version, trained on less: it answers differently
    client = MlflowClient()
    client.set_registered_model_alias(champion.name, "champion", champion.version)
    client.set_registered_model_alias(challenger.name, "challenger", challenger.version)
    monkeypatch.setenv("TWEETS_MONITOR_DIR", str(tmp_path / "monitoring"))
    monkeypatch.setenv("TWEETS_FEEDBACK_DB", str(tmp_path / "feedback.db"))
    env = dict(os.environ)
    args = (f"model_tag={champion.name}@champion", f"challenger={challenger.name}@challenger")
    tweets = list(dict.fromkeys(load_airline()["text"].head(400)))[:300]
    with running_server(*args, env=env) as url:
        served = [
            p
            for i in range(0, 300, 50)
            for p in httpx.post(f"{url}/predict_batch", json={"tweets": tweets[i : i + 50]}).json()
        ]
        assert all(p["model"] == f"{champion.name}/{champion.version}@champion" for p in served)
    # Stopped without waiting for the challenger: every answer is logged with its score (a queue left at
    # shutdown is scored first).
    logged = read_prediction_log(tmp_path / "monitoring" / "tweet_predictions" / "data").rows.set_index("id")
    assert [p["prob_positive"] for p in served] == pytest.approx(logged.loc[[p["id"] for p in served], "prob_positive"])
    theirs = logged.loc[[p["id"] for p in served], "challenger_prob"].to_numpy()
    assert not any(q is None or q != q for q in theirs)  # every one scored by the challenger
    truth = ["positive" if q >= 0.5 else "negative" for q in theirs]  # the challenger is right on every tweet
    disagreements = sum(p["label"] != t for p, t in zip(served, truth, strict=True))
    assert disagreements >= 10, "the two versions must disagree for the test to mean something"

    with running_server(*args, env=env) as url:  # restarted: the ids of the first run still join
        for i, (tweet, prediction, label) in enumerate(zip(tweets, served, truth, strict=True)):
            body = {"tweet": tweet, "predicted_label": prediction["label"], "true_label": label}
            if i % 2:
                body["prediction_id"] = prediction["id"]
            assert httpx.post(f"{url}/feedback", json=body).status_code == 200

    [comparison] = live.compare(champion.name)
    train_cli(["compare", champion.name, "--live", "--since", "1h"])
    printed = capsys.readouterr().out
    assert "on 300 tweets" in printed and f"only the challenger right: {disagreements}" in printed
    assert (comparison.labelled, comparison.challenger_right) == (300, 300)
    assert (comparison.only_challenger_right, comparison.only_champion_right) == (disagreements, 0)
    decision = live.promote_if_better_live(champion.name, challenger.version, min_labelled=200, by="tests")
    assert decision.promoted, decision.reason
    assert str(champion_version(champion.name).version) == challenger.version
    tags = client.get_model_version(challenger.name, challenger.version).tags
    assert tags["live_promotion_decision"] == decision.reason and tags["promoted_by"] == "tests"
    assert client.get_run(tags["live_comparison_run"]).data.metrics["only_challenger_right"] == disagreements
    client.set_registered_model_alias(champion.name, "champion", champion.version)  # as the session had it
