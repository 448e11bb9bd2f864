"""The served models: loaded from the BentoML store as their logged pyfunc, and the ids of their answers."""

import itertools
import secrets
from collections.abc import Callable, Sequence

import bentoml
import mlflow

PredictProba = Callable[[list[str]], Sequence[float]]
MLFLOW_FOLDER = "mlflow_model"  # where bentoml.mlflow.import_model keeps the MLflow model in a BentoML model


def pyfunc_path(bento_tag: str) -> str:
    """The folder of the MLflow model inside a model of the BentoML store (of a built Bento too)."""
    return bentoml.models.get(bento_tag).path_of(MLFLOW_FOLDER)


def load_model(path: str) -> PredictProba:
    """The P(positive) function of a logged model: its pyfunc's own Python model, whose ``predict_proba`` skips
    MLflow's checks of the input (the request types have already validated the tweets); a model logged before
    it had one is called through ``predict``."""
    model = mlflow.pyfunc.load_model(path).unwrap_python_model()
    return getattr(model, "predict_proba", model.predict)


class PredictionIds:
    """Prediction ids unique across workers, replicas and restarts: a random prefix per process, then a count."""

    def __init__(self) -> None:
        self.prefix, self.count = secrets.token_hex(6), itertools.count(1)

    def take(self, n: int) -> list[str]:
        return [f"{self.prefix}-{next(self.count)}" for _ in range(n)]
