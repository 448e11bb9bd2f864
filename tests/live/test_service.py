"""The service at the three levels BentoML recommends: the class, HTTP through ASGI, a real server."""

import asyncio
import gc
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import bentoml
import httpx
import pytest
from pydantic import TypeAdapter

from harness.servers import running_server
from tweet_sentiment.core.config import ROOT
from tweet_sentiment.serve.following import LoadedModel
from tweet_sentiment.serve.schemas import Prediction, Predictions

TWEET = "@SouthwestAir best crew ever, thank you!"


# 1. The service class, called directly.


def test_class_predicts_one_and_many(service_module, trained):
    svc = service_module.TweetSentiment()

    async def one_and_many():
        return await svc.predict(TWEET), await svc.predict_batch([TWEET, "lost my luggage, again"])

    one, many = asyncio.run(one_and_many())  # the routes' encoded answers
    one, many = Prediction.model_validate_json(one.body), TypeAdapter(Predictions).validate_json(many.body)
    assert one.model == trained["lstm"].label("champion")
    assert one.label == ("positive" if one.prob_positive >= 0.5 else "negative")
    assert many[0].prob_positive == pytest.approx(one.prob_positive, abs=1e-5)


def test_concurrent_requests_to_both_routes_share_model_calls_and_get_their_own_answers(service_module):
    svc = service_module.TweetSentiment()
    calls = []
    predict = svc.answering.served.current.predict_proba
    svc.answering.served.current = LoadedModel(
        svc.answering.served.current.model, lambda tweets: calls.append(len(tweets)) or predict(tweets)
    )
    tweets = [f"flight {i} was {'great' if i % 2 else 'awful'}" for i in range(40)]

    async def everyone_at_once():
        singles = [svc.predict(tweet) for tweet in tweets[:30]]
        return await asyncio.gather(*singles, svc.predict_batch(tweets[30:]))

    *singles, batch = asyncio.run(everyone_at_once())
    singles = [Prediction.model_validate_json(single.body) for single in singles]
    answers = [p.prob_positive for p in [*singles, *TypeAdapter(Predictions).validate_json(batch.body)]]
    assert answers == pytest.approx(predict(tweets), abs=1e-5)  # each request got its own tweets' answers
    assert sum(calls) == 40 and len(calls) < 20 and max(calls) <= 64


def test_class_keeps_its_warm_heap_out_of_the_garbage_collector(service_module, trained):
    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        service_module.TweetSentiment()
        assert gc.get_freeze_count() > 100_000  # TensorFlow and the model at least
        assert gc.get_threshold() == (50_000, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


# 2. HTTP through the ASGI app.


def test_http_predict_and_batch(http, trained):
    one = http.post("/predict", json={"tweet": TWEET})
    assert one.status_code == 200
    assert one.json()["model"] == trained["lstm"].label("champion")
    batch = http.post("/predict_batch", json={"tweets": [TWEET, "delayed 5 hours 😡"]})
    assert batch.status_code == 200
    assert len(batch.json()) == 2
    assert batch.json()[0]["prob_positive"] == pytest.approx(one.json()["prob_positive"], abs=1e-5)


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("/predict", {}, "missing"),
        ("/predict", {"tweet": ""}, "string_too_short"),
        ("/predict", {"tweet": " \t\n\x1c\u3000 "}, "string_pattern_mismatch"),  # Python's whitespace only
        ("/predict", {"tweet": 42}, "string_type"),
        ("/predict", {"tweet": None}, "string_type"),
        ("/predict", {"tweet": "x" * 1001}, "string_too_long"),
        ("/predict", {"tweet": "null\x00byte"}, "string_pattern_mismatch"),
        ("/predict_batch", {"tweets": []}, "too_short"),
        ("/predict_batch", {"tweets": ["ok"] * 257}, "too_long"),
        ("/predict_batch", {"tweets": ["ok", ""]}, "string_too_short"),
        ("/predict_batch", {"tweets": ["ok", "\t"]}, "string_pattern_mismatch"),
        ("/predict_batch", {"tweets": "not a list"}, "list_type"),
    ],
)
def test_bad_input_is_a_clear_400(http, path, body, error):
    response = http.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["detail"][0]["type"] == error


def test_invalid_json_is_a_400(http):
    response = http.post("/predict", content=b'{"tweet": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "tweet", ["😀😀😀", "\u202eright-to-left\u200b", "ｆｕｌｌｗｉｄｔｈ", "...", "#️⃣ 🇺🇸", "Ünïcödé ñ"]
)
def test_odd_unicode_and_emoji_get_a_prediction(http, tweet):
    response = http.post("/predict", json={"tweet": tweet})
    assert response.status_code == 200
    assert 0.0 <= response.json()["prob_positive"] <= 1.0


def test_health_and_custom_metrics(http, trained):
    assert http.get("/livez").status_code == 200
    assert http.get("/readyz").status_code == 200
    http.post("/predict", json={"tweet": TWEET})
    metrics = http.get("/metrics").text
    assert f'model="{trained["lstm"].label("champion")}"' in metrics
    assert "tweet_predictions_total{" in metrics
    assert "tweet_model_batch_size_bucket{" in metrics


def test_openapi_documents_what_the_service_answers(http):
    spec = http.get("/docs.json").json()
    for route in ("/predict", "/predict_batch", "/feedback", "/status"):
        operation = spec["paths"][route]["post"]
        assert {"400", "401", "408", "413", "415", "503"} <= set(operation["responses"]), route
        assert operation["responses"]["400"]["content"]["application/json"]["schema"]["required"] == ["error"]
        assert operation["requestBody"]["required"] is (route != "/status")  # /status takes no input
    prediction = spec["components"]["schemas"]["Prediction"]["properties"]
    assert prediction["language"]["nullable"] and prediction["warning"]["nullable"]
    assert "nullable" not in prediction["label"]
    feedback = spec["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert [one["required"] for one in feedback["oneOf"]] == [["true_label"], ["wrong"]]


def test_openapi_shows_examples(http):
    spec = http.get("/docs.json").json()
    schema = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["tweet"]
    assert schema["properties"]["tweet"]["example"].startswith("@united")


# 3. A real `bentoml serve` subprocess.


@pytest.mark.parametrize("family", ["logreg", "lstm", "transformer"])
def test_real_server_serves_any_family_by_tag(trained, family):
    tag = trained[family].bento_tag
    with running_server(f"model_tag={tag}") as url, bentoml.SyncHTTPClient(url) as client:
        one = client.predict(tweet=TWEET)
        assert one["model"] == trained[family].label()
        many = client.predict_batch(tweets=[TWEET, "worst flight of my life"])
        assert [p["model"] for p in many] == [trained[family].label()] * 2


def test_real_server_sheds_overload_with_503_and_recovers(trained):
    with running_server("max_concurrency=2") as url:
        body = {"tweets": ["the flight was late and the crew was rude"] * 256}

        def post(_):
            return httpx.post(f"{url}/predict_batch", json=body, timeout=60).status_code

        with ThreadPoolExecutor(24) as pool:
            codes = list(pool.map(post, range(48)))
        assert 503 in codes and 200 in codes
        assert set(codes) <= {200, 503}
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert httpx.post(f"{url}/predict", json={"tweet": TWEET}).status_code == 200


def test_unknown_tag_fails_at_start_naming_it_and_the_store(trained):
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "service:TweetSentiment",
            "--arg",
            "model_tag=tweet-nope:v1",
            "--port",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode != 0
    output = cli.stdout + cli.stderr
    assert "tweet-nope:v1" in output
    assert trained["logreg"].bento_tag in output


def test_other_languages_are_flagged_not_silently_guessed(http):
    german = "Der Flug wurde gestrichen und niemand hilft uns weiter"
    english = "@united thanks for the upgrade, the crew was fantastic!"
    answers = http.post("/predict_batch", json={"tweets": [german, english, "@united 😡😡", TWEET]}).json()
    assert answers[0]["language"] == "de" and "English-only" in answers[0]["warning"]
    assert answers[1]["language"] == "en" and answers[1]["warning"] is None
    assert [a["language"] for a in answers[2:]] == [None, None]  # nothing, or too little, to tell: no claim
    assert [a["warning"] for a in answers[2:]] == [None, None]


SEED = "Le vol a été annulé, je suis très mécontent !"  # the README's example request


def test_french_tweets_are_answered_by_translation_and_say_so(http, trained, apertium):
    import mlflow

    from tweet_sentiment.core.french import route

    answers = http.post("/predict_batch", json={"tweets": [SEED, TWEET]}).json()
    seed, label = answers[0], trained["lstm"].label("champion")
    assert seed["label"] == "negative"
    assert (seed["language"], seed["warning"], seed["model"]) == ("fr", None, f"{label}+fr")
    assert answers[1]["model"] == label  # an English tweet of the same call: the model itself
    predict = mlflow.pyfunc.load_model("models:/tweet-lstm@champion").predict
    assert seed["prob_positive"] == pytest.approx(route(predict, [SEED])[0], abs=1e-6)  # translated, and the lexicon
    named = http.post("/predict", json={"tweet": SEED, "model": champion_of(trained, "logreg")}).json()
    assert named["model"] == trained["logreg"].label("champion") + "+fr"
    report = {"tweet": SEED, "predicted_label": seed["label"], "wrong": False, "model": seed["model"]}
    assert http.post("/feedback", json=report).status_code == 200
    assert f'tweet_feedback_total{{model="{label}+fr",verdict="right"}}' in http.get("/metrics").text


def test_below_the_bar_french_tweets_keep_the_english_answer_and_the_warning(
    service_module, trained, monkeypatch, apertium
):
    from tweet_sentiment.core.french import ACCURACY_METRIC

    measured = bentoml.models.get(trained["lstm"].bento_tag).info.metadata[ACCURACY_METRIC]  # at training
    monkeypatch.setenv("TWEETS_FRENCH_MIN_ACCURACY", str(measured + 0.01))
    svc = service_module.TweetSentiment()
    answer = Prediction.model_validate_json(asyncio.run(svc.predict(SEED)).body)
    assert answer.model == trained["lstm"].label("champion") and "English-only" in answer.warning


def test_apertium_failing_leaves_french_tweets_flagged_and_says_so(service_module, trained, monkeypatch, apertium):
    from tweet_sentiment.core import french

    svc = service_module.TweetSentiment()
    assert svc.answering.served.current.answers_french
    loop = asyncio.new_event_loop()  # one loop: the batcher stays on the loop it first ran on

    def predict_seed() -> Prediction:
        return Prediction.model_validate_json(loop.run_until_complete(svc.predict(SEED)).body)

    try:
        french.TRANSLATOR.close()
        monkeypatch.setattr(french, "PIVOT", ("fr-es", "no-such-mode"))  # Apertium cannot start again
        answer = predict_seed()
        assert "french_translation" in svc.status().degraded  # the fault happened
        assert answer.model == trained["lstm"].label("champion") and "English-only" in answer.warning
        monkeypatch.undo()
        assert predict_seed().model.endswith("+fr") and "french_translation" not in svc.status().degraded
    finally:
        loop.close()


def test_the_challenger_answers_french_as_the_server_does(http, trained, apertium):
    from tweet_sentiment.serve.loading import load_challenger

    tweets = [SEED, TWEET, "Super vol, équipage adorable, merci !"]
    served = http.post("/predict_batch", json={"tweets": tweets, "model": champion_of(trained, "logreg")}).json()
    assert [answer["model"].endswith("+fr") for answer in served] == [True, False, True]
    challenger = load_challenger(trained["logreg"].bento_tag)  # what a challenger's process loads
    assert list(challenger(tweets)) == pytest.approx([answer["prob_positive"] for answer in served], abs=1e-6)


@pytest.mark.slow
def test_schemathesis_with_all_checks_finds_nothing_in_the_live_openapi(trained):
    """Every check: no server error, and every answer (status, content type, body, headers) as documented."""
    with running_server(f"model_tag={trained['logreg'].bento_tag}") as url:
        result = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "run", f"{url}/docs.json",
                "--checks", "all", "--max-examples", "50", "--seed", "1",
            ],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert "No issues found" in result.stdout and " passed" in result.stdout


def test_home_page_presents_the_service_and_its_model(http, trained):
    page = http.get("/", headers={"host": "tweets.example:8080"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "Predicts whether an English tweet is positive or negative" in text
    lstm = trained["lstm"]
    assert f"<b>{lstm.name}</b> version <b>{lstm.version}</b>" in text and lstm.bento_tag in text
    assert "curl -s -X POST http://tweets.example:8080/predict" in text
    assert "Machine Learning Service created with BentoML" not in text
    readme = http.get("/readme").text
    for anchor in ("serving", "model-lifecycle", "settings"):
        assert f"href='/readme#{anchor}'" in text and f"id='{anchor}'" in readme
    # Swagger at /docs, from the assets BentoML serves, reading this service's document.
    swagger = http.get("/docs").text
    assets = re.findall(r'(?:src|href)="(/static_content/[^"]+)"', swagger)
    assert len(assets) == 2 and all(http.get(asset).status_code == 200 for asset in assets)
    assert '"/docs.json"' in swagger


def test_home_page_examples_work(http):
    """Every example on the page, sent as it is written there, gets a 200."""
    import json
    from html import unescape

    page = unescape(http.get("/").text)
    examples = re.findall(r"-X POST http://[^/]+(/\w+) .*?-d '(.*?)'</pre>", page, flags=re.S)
    assert [route for route, _ in examples] == ["/predict", "/predict_batch", "/explain", "/feedback", "/status"]
    for route, body in examples:
        assert http.post(route, json=json.loads(body)).status_code == 200, route


# 4. Requests that name their model (`--arg models=...`: the session's service has each family's champion).


def champion_of(trained, family: str) -> str:
    return f"{trained[family].name}@champion"


@pytest.mark.parametrize("family", ["logreg", "lstm", "transformer"])
def test_a_request_may_name_each_familys_model(http, trained, family):
    import mlflow

    name = champion_of(trained, family)
    tweets = [TWEET, "lost my bag and nobody answers"]
    one = http.post("/predict", json={"tweet": TWEET, "model": name}).json()
    many = http.post("/predict_batch", json={"tweets": tweets, "model": name}).json()
    label = trained[family].label("champion")
    assert one["model"] == label and [answer["model"] for answer in many] == [label, label]
    own = mlflow.pyfunc.load_model(f"models:/{name}").predict(tweets)  # the registered model itself
    assert [answer["prob_positive"] for answer in many] == pytest.approx(list(own), abs=1e-5)
    assert one["prob_positive"] == pytest.approx(own[0], abs=1e-5)


@pytest.mark.parametrize(("path", "body"), [("/predict", {"tweet": TWEET}), ("/predict_batch", {"tweets": [TWEET]})])
def test_a_model_the_server_was_not_started_with_is_a_400_naming_those_it_was(http, trained, path, body):
    response = http.post(path, json={**body, "model": "tweet-lstm@nope"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "tweet-lstm@nope" in error
    assert all(champion_of(trained, family) in error for family in trained)


def test_concurrent_requests_naming_different_models_are_batched_per_model(service_module, trained):
    svc = service_module.TweetSentiment()
    specs = list(svc.answering.models)
    assert specs[0] == "tweet-lstm@champion" and len(specs) == 3
    calls: dict[str, list[list[str]]] = {spec: [] for spec in specs}
    own = {}
    for spec, model in svc.answering.models.items():
        own[spec] = model.current.predict_proba

        def counted(tweets, spec=spec):
            calls[spec].append(list(tweets))
            return own[spec](tweets)

        model.current = LoadedModel(model.current.model, counted)
    tweets = [f"flight {i} was {'great' if i % 2 else 'awful'}" for i in range(36)]

    async def everyone_at_once():
        return await asyncio.gather(*(svc.predict(tweet, specs[i % 3]) for i, tweet in enumerate(tweets)))

    answers = [Prediction.model_validate_json(answer.body) for answer in asyncio.run(everyone_at_once())]
    for i, spec in enumerate(specs):
        asked, answered_ = tweets[i::3], answers[i::3]
        assert {answer.model for answer in answered_} == {svc.answering.models[spec].current.model.label}
        assert [answer.prob_positive for answer in answered_] == pytest.approx(list(own[spec](asked)), abs=1e-5)
        # A model's calls held its own requests' tweets only, merged into fewer calls than requests.
        assert sorted(tweet for call in calls[spec] for tweet in call) == sorted(asked)
        assert len(calls[spec]) < len(asked)


def test_the_models_a_request_may_name_are_shown_everywhere(http, trained):
    names = [champion_of(trained, family) for family in ("lstm", "logreg", "transformer")]
    status = http.post("/status", json={}).json()
    assert [model["name"] for model in status["models"]] == names
    assert [model["model"] for model in status["models"]] == [
        trained[f].label("champion") for f in ("lstm", "logreg", "transformer")
    ]
    spec = http.get("/docs.json").json()
    for route in ("/predict", "/predict_batch"):
        schema = spec["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert schema["properties"]["model"]["enum"] == [*names, None]
    home = http.get("/").text
    assert all(f"<code>{name}</code>" in home for name in names[1:])
    card = http.get("/model-card", params={"model": names[1]})
    assert card.status_code == 200 and trained["logreg"].label("champion") in card.text
    assert http.get("/model-card", params={"model": "tweet-lstm@nope"}).status_code == 404
    http.post("/predict", json={"tweet": TWEET, "model": names[2]})
    metrics = http.get("/metrics").text
    assert f'tweet_model_batch_size_count{{model="{names[2]}"}}' in metrics
