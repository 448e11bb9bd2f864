"""Brands in a served answer and in Prometheus: configured names only, however clients write."""

import os
import re

import pytest

from harness.servers import running_server

CONFIGURED = [
    "United",
    "US Airways",
    "American Airlines",
    "Southwest",
    "JetBlue",
    "Delta",
    "Virgin America",
    "Air France",
    "SNCF",
]  # fmt: skip (brands.yaml)


def test_answers_name_the_brands_of_each_tweet_english_and_french(http):
    tweets = ["@united lost my bag", "J'adore AIR FRANCE !", "reunited with my bag", "@Delta and @united both late"]
    answers = http.post("/predict_batch", json={"tweets": tweets}).json()
    assert [answer["brands"] for answer in answers] == [["United"], ["Air France"], [], ["United", "Delta"]]
    assert http.post("/predict", json={"tweet": "Merci @SNCF"}).json()["brands"] == ["SNCF"]
    assert http.post("/status", json={}).json()["brands"] == CONFIGURED


def test_brand_series_are_the_configured_ones_whatever_clients_send(http):
    invented = [f"@brand{i} #united{i} UNITED AIRLINES {'awful' if i % 2 else 'great'}" for i in range(200)]
    for start in range(0, len(invented), 50):
        assert http.post("/predict_batch", json={"tweets": invented[start : start + 50]}).status_code == 200
    metrics = http.get("/metrics").text
    series = re.findall(r'^tweet_brand_predictions_total\{brand="([^"]*)",label="(\w+)"\} (\S+)', metrics, re.M)
    assert len(series) == len(CONFIGURED) * 2 and {brand for brand, _, _ in series} == set(CONFIGURED)
    united = sum(float(count) for brand, _, count in series if brand == "United")
    assert united >= len(invented)  # each named United by its keyword, counted once however it was written


def test_a_bad_brands_file_stops_the_server_at_start_naming_it(trained, tmp_path):
    (tmp_path / "brands.yaml").write_text('United: ["@united"]\nOther: ["@UNITED"]\n')
    env = {**os.environ, "TWEETS_BRANDS_FILE": str(tmp_path / "brands.yaml")}
    with pytest.raises(RuntimeError) as refused, running_server(f"model_tag={trained['logreg'].bento_tag}", env=env):
        pass
    assert "the term '@UNITED' names both 'United' and 'Other'" in str(refused.value)
