"""What makes a model family: one record per family instead of parallel tables keyed by name."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tweet_sentiment.training.data import Split

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
    fit: Callable[[Split, Any, Path], Curves]  # train, save the native model into the folder, return curves
    runtime: type[Predictor]  # what serves it (tweet_model.runtime): loads the served folder
    requirements: tuple[str, ...]  # pip packages the runtime needs besides the pyfunc's own
    export: Callable[[Path, Path, Any], None] | None = None  # native folder -> served folder; None: served as is
    native: type[Predictor] | None = None  # loads the native model, to check the export against it
    quantize: Callable[[Path], str] | None = None  # writes an int8 copy into the served folder, returns its file
    predictor_settings: Callable[[Any], dict[str, Any]] = field(default=lambda config: {})
    """Settings the runtime must share with training (e.g. the LSTM's sequence length), logged with the model."""
