"""The work of /status: the served model, the models a request may name, the alert state, what is degraded."""

from sqlalchemy.exc import DBAPIError

from tweet_sentiment.core.feedback import FeedbackStore
from tweet_sentiment.core.prediction_log import PredictionLog
from tweet_sentiment.serve.answering import Answering
from tweet_sentiment.serve.following import AliasFollower
from tweet_sentiment.serve.loading import TRANSLATION
from tweet_sentiment.serve.schemas import NamedModelStatus, ServedModelInfo, Status


def worker_status(answering: Answering, store: FeedbackStore) -> Status:
    """This worker's status; the alert fields are null while the feedback store is down (reads only)."""
    try:
        state = store.state()
        store.health.succeeded()
    except DBAPIError as error:
        store.health.failed(error)
        state = None
    dependencies = (store.health, PredictionLog.health, AliasFollower.registry, TRANSLATION)
    current = answering.served.current.model
    follower = answering.challenger_follower
    return Status(
        model=current.label,
        served=ServedModelInfo(
            name=current.name,
            version=current.version,
            alias=current.alias,
            bento_tag=current.bento_tag,
            family=current.family,
            mlflow_run_id=current.run_id,
        ),
        family=current.family,
        following=answering.served.status(),
        models=[
            NamedModelStatus(name=spec, model=model.current.model.label, following=model.status())
            for spec, model in answering.models.items()
        ],
        brands=answering.brands.names,
        alert_open=None if state is None else state.incident_id is not None,
        wrong_in_window=None if state is None else state.wrong_in_window,
        alert_threshold=store.rule.threshold,
        alert_window_seconds=store.rule.window_seconds,
        degraded=[dependency.name for dependency in dependencies if dependency.degraded],
        shadow=answering.shadow.status(follower.status() if follower else None) if answering.shadow else None,
    )
