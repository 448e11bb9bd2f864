"""The Streamlit page against a real served model: AppTest, then a real headless Chromium."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request

import httpx
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from harness.servers import free_port, running_server
from tweet_sentiment.core.config import ROOT

APP = str(ROOT / "streamlit_app.py")


@pytest.fixture(autouse=True)
def main_module_kept():
    """AppTest leaves the page as ``__main__``, which every process spawned later in the session (a challenger's)
    would run again as it starts."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="module")
def service_url(trained, tmp_path_factory):
    # Its own feedback database: alerts opened by other tests must not show on this page.
    env = {**os.environ, "TWEETS_FEEDBACK_DB": str(tmp_path_factory.mktemp("streamlit") / "feedback.db")}
    args = (f"model_tag={trained['logreg'].bento_tag}", f"challenger={trained['lstm'].bento_tag}")
    with running_server(*args, env=env) as url:
        yield url


@pytest.fixture
def app(service_url, monkeypatch):
    monkeypatch.setenv("TWEET_SERVICE_URL", service_url)
    return AppTest.from_file(APP, default_timeout=30).run()


def test_page_shows_the_served_model_and_alert_state(app, trained):
    assert not app.exception
    sidebar = " ".join(m.value for m in app.sidebar.markdown)
    assert trained["logreg"].label() in sidebar and "Brands watched: United, US Airways" in sidebar
    assert len(app.sidebar.success) == 1  # no alert yet


def test_predict_then_report_wrong_sends_feedback(app, trained):
    app.text_area[0].input("@united lost my bag and nobody helps").run()
    app.button[0].click().run()  # Predict
    [metric] = app.metric
    assert metric.value in ("negative", "positive")
    assert trained["logreg"].label() in metric.label
    why = next(m.value for m in app.markdown if "Why: each word" in m.value)  # each word shaded by its effect
    assert why.count("<span title=") == 7 and ">lost</span>" in why and "(coefficients)" in why
    wrong = next(b for b in app.button if b.label == "Wrong")
    wrong.click().run()
    assert any("feedback #" in info.value for info in app.info)
    # The challenger scored the tweet in shadow; the feedback named the answer's id, so it counts for both.
    sidebar = " ".join(m.value for m in app.sidebar.markdown)
    assert trained["lstm"].label() in sidebar and "On 1 labelled tweets" in sidebar


def test_a_csv_export_is_scored_through_the_service_with_its_brands_shares(app, service_url):
    tweets = [f"@united flight {i} was {'great' if i % 3 else 'awful'}" for i in range(300)]
    tweets += ["   ", "@JetBlue lovely crew, loved the snacks"]  # a row with no tweet stays, unscored
    export = pd.DataFrame({"id": range(len(tweets)), "body": tweets})
    app.file_uploader[0].set_value(("export.csv", export.to_csv(index=False).encode(), "text/csv")).run()
    next(box for box in app.selectbox if box.label == "Text column").set_value("body").run()
    next(button for button in app.button if button.label == "Score the file").click().run()
    assert not app.exception
    scored = app.session_state["scored"]
    assert list(scored["id"]) == list(export["id"]) and pd.isna(scored["label"].iloc[300])
    answers = httpx.post(f"{service_url}/predict_batch", json={"tweets": tweets[:200]}, timeout=30).json()
    assert list(scored["label"].iloc[:200]) == [answer["label"] for answer in answers]  # more than one request
    assert set(scored["brands"]) == {"United", "", "JetBlue"}
    [shares] = app.dataframe
    assert shares.value.loc["United", "tweets"] == 300 and shares.value.loc["JetBlue", "tweets"] == 1
    assert app.get("download_button")


def test_refused_tweet_is_explained(app):
    app.text_area[0].input("   ").run()
    app.button[0].click().run()
    assert app.warning and "refused" in app.warning[0].value
    assert not app.metric


def test_unreachable_service_is_an_error_not_a_crash(monkeypatch):
    monkeypatch.setenv("TWEET_SERVICE_URL", f"http://127.0.0.1:{free_port()}")
    app = AppTest.from_file(APP, default_timeout=30).run()
    assert not app.exception
    assert "not reachable" in app.error[0].value


@pytest.mark.skipif(
    not shutil.which("chromedriver"), reason="Debian's chromium-driver is not installed (.ci/run installs it)"
)
def test_page_renders_in_headless_chromium(service_url, tmp_path):
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    page = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            APP,
            "--server.headless=true",
            f"--server.port={port}",
            "--server.address=127.0.0.1",
            "--browser.gatherUsageStats=false",
        ],
        cwd=ROOT,
        env={**os.environ, "TWEET_SERVICE_URL": service_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        for _ in range(60):  # the page server
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        browser.get(f"http://127.0.0.1:{port}")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: "Model:" in b.find_element(By.TAG_NAME, "body").text)
        # Streamlit renders in pieces: wait for each element before using it.
        wait.until(lambda b: b.find_elements(By.TAG_NAME, "textarea"))[0].send_keys("@JetBlue best crew, thank you!")
        wait.until(lambda b: [e for e in b.find_elements(By.TAG_NAME, "button") if e.text == "Predict"])[0].click()
        wait.until(lambda b: "Sentiment (" in b.find_element(By.TAG_NAME, "body").text)
        body = browser.find_element(By.TAG_NAME, "body").text
        browser.save_screenshot(str(tmp_path / "page.png"))
    finally:
        browser.quit()
        page.terminate()
        page.wait(timeout=30)
    assert "Tweet sentiment" in body and "P(positive)" in body
    image = Image.open(tmp_path / "page.png").convert("L")
    assert image.size[0] >= 1000
    assert len(set(image.getdata())) > 20, "the screenshot is blank"
