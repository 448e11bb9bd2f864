"""Try tweets against the running service, see why, report wrong predictions, and score a CSV export by brand.

TWEET_SERVICE_URL=http://localhost:3000 streamlit run streamlit_app.py
"""

import html

import httpx
import pandas as pd
import streamlit as st
from pydantic import TypeAdapter, ValidationError

from tweet_sentiment.core.config import settings
from tweet_sentiment.serve.schemas import MAX_TWEETS_PER_REQUEST, Tweet

CONFIG = settings()
SERVICE_URL = CONFIG.service_url.rstrip("/")
TOKEN = CONFIG.feedback_token  # when the service requires one for /feedback
HEADERS = {"Authorization": f"Bearer {TOKEN.get_secret_value()}"} if TOKEN else {}
TWEET = TypeAdapter(Tweet)  # what the service accepts as a tweet: the other rows of a CSV are kept, not scored


def call(route: str, body: dict) -> dict | list:
    response = httpx.post(f"{SERVICE_URL}/{route}", json=body, headers=HEADERS, timeout=60)
    if response.status_code == 400:
        detail = response.json().get("detail") or response.json()
        raise ValueError(detail[0]["msg"] if isinstance(detail, list) else str(detail))
    response.raise_for_status()
    return response.json()


def scorable(text: object) -> bool:
    try:
        TWEET.validate_python(text)
    except ValidationError:
        return False
    return True


def score_csv(frame: pd.DataFrame, column: str, model: str) -> pd.DataFrame:
    """``frame`` with the service's answer to each row's tweet (label, prob_positive, brands), in requests of
    MAX_TWEETS_PER_REQUEST tweets, a progress bar following them; rows with no usable text keep empty answers."""
    rows = [i for i, text in enumerate(frame[column]) if scorable(text)]
    answers: list[dict] = []
    progress = st.progress(0.0, text=f"scoring {len(rows):,} tweets")
    for start in range(0, len(rows), MAX_TWEETS_PER_REQUEST):
        chunk = [frame[column].iloc[i] for i in rows[start : start + MAX_TWEETS_PER_REQUEST]]
        answers += call("predict_batch", {"tweets": chunk, "model": model})
        progress.progress(len(answers) / max(len(rows), 1), text=f"scored {len(answers):,} of {len(rows):,} tweets")
    scored = frame.assign(label=None, prob_positive=None, brands="")
    for row, answer in zip(rows, answers, strict=True):
        scored.loc[scored.index[row], ["label", "prob_positive", "brands"]] = [
            answer["label"],
            answer["prob_positive"],
            ", ".join(answer["brands"]),
        ]
    return scored


def highlighted(explained: dict) -> str:
    """The explained text as HTML, each word shaded by its effect on P(positive): green towards positive, red
    towards negative, the deeper the stronger (against the tweet's strongest word); with its legend."""
    text, contributions = explained["explained_text"], explained["contributions"]
    strongest = max((abs(c["effect"]) for c in contributions), default=0) or 1
    parts, at = [], 0
    for c in contributions:
        colour = "39,174,96" if c["effect"] > 0 else "192,57,43"
        alpha = 0.15 + 0.75 * abs(c["effect"]) / strongest
        style = f"background:rgba({colour},{alpha:.2f});padding:0 2px;border-radius:3px"
        word = f'<span title="{c["effect"]:+.3f}" style="{style}">{html.escape(c["text"])}</span>'
        parts += [html.escape(text[at : c["start"]]), word]
        at = c["end"]
    of = "its English translation" if explained["explained"] == "english_translation" else "the tweet"
    legend = (
        f"Why: each word of {of} shaded by how much it moved P(positive), "
        '<span style="background:rgba(39,174,96,.6)">towards positive</span> or '
        f'<span style="background:rgba(192,57,43,.6)">towards negative</span> ({explained["method"]}).'
    )
    return f"<p>{''.join(parts)}{html.escape(text[at:])}</p><p><small>{legend}</small></p>"


def brand_shares(scored: pd.DataFrame) -> pd.DataFrame:
    """Tweets and negative share per brand named (a tweet naming two brands counts for both)."""
    named = scored.assign(brand=scored["brands"].str.split(", ")).explode("brand")
    named = named[named["brand"].fillna("") != ""]
    shares = named.groupby("brand").agg(tweets=("label", "size"), negative=("label", lambda s: (s == "negative").sum()))
    return shares.assign(negative_share=shares["negative"] / shares["tweets"]).sort_values("tweets", ascending=False)


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
one_tweet, many_tweets = st.tabs(["A tweet", "A CSV of tweets"])

with one_tweet:
    tweet = st.text_area("Tweet", placeholder="@united thanks for the upgrade, the crew was fantastic!", max_chars=1000)
    if st.button("Predict", type="primary"):
        try:  # /explain answers what /predict does, and why
            st.session_state.prediction = {"tweet": tweet, **call("explain", {"tweet": tweet, "model": chosen})}
        except ValueError as error:
            st.session_state.pop("prediction", None)
            st.warning(f"The service refused this tweet: {error}")

    prediction = st.session_state.get("prediction")
    if prediction:
        st.metric(f"Sentiment ({prediction['model']})", prediction["label"])
        st.progress(prediction["prob_positive"], text=f"P(positive) = {prediction['prob_positive']:.3f}")
        st.markdown(highlighted(prediction), unsafe_allow_html=True)
        if prediction["brands"]:
            st.write("Brands: " + ", ".join(prediction["brands"]))
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

with many_tweets:
    upload = st.file_uploader("An export of tweets", type="csv")
    if upload is not None:
        frame = pd.read_csv(upload)
        columns = list(frame.columns)
        column = st.selectbox("Text column", columns, index=columns.index("text") if "text" in columns else 0)
        if st.button("Score the file", type="primary"):
            st.session_state.scored = score_csv(frame, column, chosen)
    scored = st.session_state.get("scored")
    if scored is not None:
        shares = brand_shares(scored)
        st.write(f"{scored['label'].notna().sum():,} of {len(scored):,} rows scored, {len(shares)} brands named")
        if not shares.empty:
            st.dataframe(shares.style.format({"negative_share": "{:.0%}"}))
            st.bar_chart(shares["negative_share"], y_label="negative share")
        st.download_button("Download the scored file", scored.to_csv(index=False), "scored.csv", "text/csv")

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
    if status["brands"]:
        st.write("Brands watched: " + ", ".join(status["brands"]))
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
