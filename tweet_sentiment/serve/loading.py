"""The served models: loaded from the BentoML store as their logged pyfunc, and the ids of their answers."""

import itertools
import secrets
from collections.abc import Callable, Sequence

import bentoml

from tweet_model.pyfunc import load_predict_proba
from tweet_sentiment.core.config import settings
from tweet_sentiment.core.dependencies import Dependency
from tweet_sentiment.core.french import TranslationUnavailable, answering_french, answers_french, reroute
from tweet_sentiment.core.models import ModelNotFound, ServedModel, resolve_model

PredictProba = Callable[[list[str]], Sequence[float]]
MLFLOW_FOLDER = "mlflow_model"  # where bentoml.mlflow.import_model keeps the MLflow model in a BentoML model


def resolved(spec: str, role: str) -> ServedModel:
    """The model ``spec`` names, to serve as ``role``; ModelNotFound names it and lists what exists if unknown."""
    try:
        return resolve_model(spec)
    except ModelNotFound as error:
        raise ModelNotFound(f"the {role} {spec!r} cannot be served: {error}") from None


def pyfunc_path(bento_tag: str) -> str:
    """The folder of the MLflow model inside a model of the BentoML store (of a built Bento too)."""
    return bentoml.models.get(bento_tag).path_of(MLFLOW_FOLDER)


TRANSLATION = Dependency("french_translation")  # while it fails, French tweets get the English answer, flagged


def french_by_translation(bento_tag: str) -> bool:
    """Whether the server answers French tweets with this model by translation (core/french.py): its French
    test accuracy, which its import carries, reaches TWEETS_FRENCH_MIN_ACCURACY, and Apertium is here."""
    return answers_french(bentoml.models.get(bento_tag).info.metadata, settings().french_min_accuracy)


def answer_french(
    predict: PredictProba, tweets: list[str], languages: list[str | None], probs: Sequence[float]
) -> tuple[Sequence[float], list[bool]]:
    """``probs`` with French tweets answered by translation, and which were; while Apertium fails, ``probs``
    unchanged (the English answers, flagged as not English) and the failure counted."""
    try:
        answered = reroute(predict, tweets, languages, probs)
    except TranslationUnavailable as error:
        TRANSLATION.failed(error)
        return probs, [False] * len(tweets)
    TRANSLATION.succeeded()
    return answered


def load_challenger(bento_tag: str) -> PredictProba:
    """A challenger's P(positive) function, in its own process: French tweets answered as a served model of this
    version answers them."""
    predict = load_predict_proba(pyfunc_path(bento_tag))
    return answering_french(predict) if french_by_translation(bento_tag) else predict


class PredictionIds:
    """Prediction ids unique across workers, replicas and restarts: a random prefix per process, then a count."""

    def __init__(self) -> None:
        self.prefix, self.count = secrets.token_hex(6), itertools.count(1)

    def take(self, n: int) -> list[str]:
        return [f"{self.prefix}-{next(self.count)}" for _ in range(n)]
