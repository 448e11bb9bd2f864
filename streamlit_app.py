"""Try tweets against the running service and report wrong predictions.

TWEET_SERVICE_URL=http://localhost:3000 streamlit run streamlit_app.py
"""

import httpx
import streamlit as st

from tweet_sentiment.core.config import settings

CONFIG = settings()
SERVICE_URL = CONFIG.service_url.rstrip("/")
TOKEN = CONFIG.feedback_token  # when the service requires one for /feedback
HEADERS = {"Authorization": f"Bearer {TOKEN.get_secret_value()}"} if TOKEN else {}


def call(route: str, body: dict) -> dict:
    response = httpx.post(f"{SERVICE_URL}/{route}", json=body, headers=HEADERS, timeout=30)
    if response.status_code == 400:
        detail = response.json().get("detail") or response.json()
        raise ValueError(detail[0]["msg"] if isinstance(detail, list) else str(detail))
    response.raise_for_status()
    return response.json()


st.set_page_config(page_title="Tweet sentiment", page_icon="🐦")
st.title("Tweet sentiment")

try:
    status = call("status", {})
except httpx.HTTPError as error:
    st.error(f"The service at {SERVICE_URL} is not reachable: {error}")
    st.stop()

# The models a request may name, the served one (the default) first: a choice only when there is one.
names = [model["name"] for model in status["models"]]
chosen = st.selectbox("Model", names) if len(names) > 1 else names[0]
tweet = st.text_area("Tweet", placeholder="@united thanks for the upgrade, the crew was fantastic!", max_chars=1000)
if st.button("Predict", type="primary"):
    try:
        st.session_state.prediction = {"tweet": tweet, **call("predict", {"tweet": tweet, "model": chosen})}
    except ValueError as error:
        st.session_state.pop("prediction", None)
        st.warning(f"The service refused this tweet: {error}")

prediction = st.session_state.get("prediction")
if prediction:
    st.metric(f"Sentiment ({prediction['model']})", prediction["label"])
    st.progress(prediction["prob_positive"], text=f"P(positive) = {prediction['prob_positive']:.3f}")
    right, wrong = st.columns(2)
    said_right, said_wrong = right.button("Right"), wrong.button("Wrong")
    if said_right or said_wrong:
        body = {
            "tweet": prediction["tweet"],
            "predicted_label": prediction["label"],
            "wrong": said_wrong,
            "model": prediction["model"],
            "prediction_id": prediction["id"],
        }
        receipt = call("feedback", body)
        status = call("status", {})  # the alert state after this feedback
        st.info(
            f"Thanks, feedback #{receipt['id']} recorded."
            + (" An alert is open for this model." if receipt["alert_open"] else "")
        )

with st.sidebar:  # last, so it shows the alert state after any feedback just sent
    st.subheader("Service")
    st.write(f"URL: `{SERVICE_URL}`")
    st.write(f"Model: `{status['model']}` ({status['family']})")
    for model in status["models"][1:]:
        st.write(f"Also: `{model['model']}`")
    minutes = status["alert_window_seconds"] / 60
    if status["alert_open"]:
        st.error(f"Alert open: {status['wrong_in_window']} wrong predictions reported in {minutes:g} minutes")
    else:
        st.success(
            f"No alert: {status['wrong_in_window']} of at most {status['alert_threshold']} wrong reports "
            f"in {minutes:g} minutes"
        )
    if shadow := status.get("shadow"):
        st.subheader("Challenger in shadow")
        st.write(f"`{shadow['challenger']}` scored {shadow['scored']} tweets ({shadow['skipped']} skipped)")
        if shadow["agreement"] is not None:
            st.write(f"Same label as the champion: {shadow['agreement']:.0%}")
        if shadow["labelled"]:
            st.write(
                f"On {shadow['labelled']} labelled tweets: champion {shadow['champion_accuracy']:.0%}, "
                f"challenger {shadow['challenger_accuracy']:.0%} right"
            )
