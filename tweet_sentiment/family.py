"""What makes a model family: one record per family instead of parallel tables keyed by name."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tweet_sentiment.data import Split

Curves = dict[str, list[float]]


class Predictor(Protocol):
    def __init__(self, folder: Path, **settings: Any) -> None:
        """Load the model saved in ``folder``; ``settings`` come from the logged model's config."""

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """P(positive) for each cleaned tweet."""


@dataclass(frozen=True)
class ModelFamily:
    name: str
    config: type  # a dataclass of hyper-parameters: its fields become the trainer's flags
    fit: Callable[[Split, Any, Path], Curves]  # train, save into the folder, return per-epoch/step curves
    predictor: type[Predictor]  # loads what fit saved; the logged model calls it
    requirements: tuple[str, ...]  # pip packages the logged model needs besides mlflow, numpy, pandas
    predictor_settings: Callable[[Any], dict[str, Any]] = field(default=lambda config: {})
    """Settings the predictor must share with training (e.g. the transformer's max_length), logged with the model."""
