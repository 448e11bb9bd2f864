"""The work of /feedback: store the report, evaluate the alert rule, count it, let the challenger judge it."""

from sqlalchemy.exc import DBAPIError
from starlette.responses import Response

from tweet_sentiment.core.feedback import FeedbackStore, is_outage, truth_of
from tweet_sentiment.core.french import ROUTE_MARK
from tweet_sentiment.serve.alerting import AlertSender
from tweet_sentiment.serve.answering import Answering
from tweet_sentiment.serve.guards import error_response
from tweet_sentiment.serve.metrics import feedback_total
from tweet_sentiment.serve.schemas import FeedbackReceipt

# The pool checks connections before use: the store answers as soon as it is back.
STORE_RETRY_AFTER = {"Retry-After": "5"}


def take_feedback(
    store: FeedbackStore,
    alerts: AlertSender,
    answering: Answering,
    tweet: str,
    predicted_label: str,
    true_label: str | None,
    wrong: bool | None,
    model: str | None,
    idempotency_key: str | None,
    prediction_id: str | None,
) -> FeedbackReceipt | Response:
    """Store a report and answer its receipt: 400 when the store refuses it, 503 only when nothing was stored;
    stored but with the alert state unreadable, the receipt's alert fields are null."""
    is_wrong = wrong if true_label is None else true_label != predicted_label
    model = model or answering.model_label
    try:
        feedback_id = store.add(tweet, predicted_label, true_label, is_wrong, model, idempotency_key, prediction_id)
    except DBAPIError as error:
        if not is_outage(error):  # the database refused this report: the same request would fail again
            return error_response(400, f"the feedback store cannot hold this report ({type(error.orig).__name__})")
        store.health.failed(error)  # down: the client retries (safely with a key)
        return error_response(503, "the feedback store is unavailable; retry later", STORE_RETRY_AFTER)
    try:
        state = store.evaluate()
        store.health.succeeded()
    except DBAPIError as error:  # stored all the same: answered with its id, the alert state unknown
        store.health.failed(error)
        state = None
    # Only a model answering now (in English or by translation) is a label value: a client's free text must not
    # create metric series.
    answering_now = {m.label + route for m in answering.answering_now().values() for route in ("", ROUTE_MARK)}
    verdict = "wrong" if is_wrong else "right"
    feedback_total.labels(verdict=verdict, model=model if model in answering_now else "other").inc()
    if answering.shadow and model.removesuffix(ROUTE_MARK) == answering.model_label:  # the challenger scored it too
        answering.shadow.judge(prediction_id, tweet, truth_of(predicted_label, true_label, is_wrong))
    if state and state.opened_now:
        alerts.wake()  # the e-mail goes out from the sender thread, never in this request
    return FeedbackReceipt(
        id=feedback_id,
        wrong=is_wrong,
        wrong_in_window=None if state is None else state.wrong_in_window,
        alert_open=None if state is None else state.incident_id is not None,
    )
