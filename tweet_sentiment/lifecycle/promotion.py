"""The champion rule, and promotion and rollback by hand, recorded in the MLflow Model Registry."""

import getpass
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from tweet_model import DECISION_CUT
from tweet_sentiment.core.models import CHAMPION, ModelNotFound, versions_of

log = logging.getLogger(__name__)

STACK_TAG = "champion_stack"  # registered-model tag: the versions that held the alias, oldest first
STACK_LIMIT = 50
AUTOMATIC = "train (automatic)"


# Fair promotion.


@dataclass(frozen=True)
class Evaluation:
    """What a version was evaluated on: the promotion rule compares versions on the same test split only."""

    dataset: str  # the dataset definition the split comes from, e.g. "airline"
    sampled: bool  # trained and tested on a sample: never promoted automatically
    fingerprint: str  # digest of the test split's texts and labels
    accuracy: float

    def as_tags(self) -> dict[str, str]:
        return {
            "dataset": self.dataset,
            "sampled": str(self.sampled).lower(),
            "test_fingerprint": self.fingerprint,
            "test_accuracy": repr(self.accuracy),  # exact, so comparisons are not decided by rounding
        }


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a split's texts and labels, row order included."""
    return hashlib.sha256(pd.util.hash_pandas_object(frame[["text", "label"]], index=False).to_numpy()).hexdigest()


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str


def decide(evaluation: Evaluation, champion: ModelVersion | None, champion_accuracy: Callable[[], float]) -> Decision:
    """The promotion rule: a full-data version beats the champion on the same test split, strictly.
    ``champion_accuracy`` is called only when the versions are comparable (it may re-evaluate)."""
    if evaluation.sampled:
        return Decision(False, "trained on a sample: never promoted automatically (promote by hand)")
    if champion is None:
        return Decision(True, f"first version trained on the full {evaluation.dataset} data")
    if champion.tags.get("dataset") != evaluation.dataset:
        return Decision(
            False,
            f"champion v{champion.version} was trained on {champion.tags.get('dataset', 'unknown data')!r}, "
            f"this version on {evaluation.dataset!r}: not comparable (promote by hand)",
        )
    accuracy = champion_accuracy()
    verdict = "beats" if evaluation.accuracy > accuracy else "does not beat"
    return Decision(
        evaluation.accuracy > accuracy,
        f"test accuracy {evaluation.accuracy:.4f} {verdict} champion v{champion.version}'s "
        f"{accuracy:.4f} on the same {evaluation.dataset} test split (ties keep the champion)",
    )


def champion_accuracy_on(champion: ModelVersion, evaluation: Evaluation, test: pd.DataFrame) -> float:
    """The champion's accuracy on this test split: its recorded one, or re-evaluated if the split differs."""
    if champion.tags.get("test_fingerprint") == evaluation.fingerprint:
        return float(champion.tags["test_accuracy"])
    log.info("re-evaluating champion v%s on this run's test split (%d tweets)", champion.version, len(test))
    model = mlflow.pyfunc.load_model(f"models:/{champion.name}/{champion.version}")
    probs = np.asarray(model.predict(test["text"].tolist()))
    return float(((probs >= DECISION_CUT).astype(int) == test["label"].to_numpy()).mean())


def promote_if_better(
    name: str, version: str, evaluation: Evaluation, test: pd.DataFrame, client: MlflowClient | None = None
) -> Decision:
    """Record the version's evaluation, then give it the champion alias if the rule says so."""
    client = client or MlflowClient()
    _set_tags(client, name, version, evaluation.as_tags())
    champion = champion_version(name, client)
    decision = decide(evaluation, champion, lambda: champion_accuracy_on(champion, evaluation, test))
    client.set_model_version_tag(name, version, "promotion_decision", decision.reason)
    if decision.promoted:
        promote(name, version, decision.reason, by=AUTOMATIC, client=client)
    log.info("%s v%s %s: %s", name, version, "promoted" if decision.promoted else "not promoted", decision.reason)
    return decision


# Promotion and rollback by hand, recorded in the registry.


def champion_version(name: str, client: MlflowClient | None = None, alias: str = CHAMPION) -> ModelVersion | None:
    client = client or MlflowClient()
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _stack(name: str, client: MlflowClient) -> list[str]:
    value = client.get_registered_model(name).tags.get(STACK_TAG, "")
    return [v for v in value.split(",") if v]


def _set_tags(client: MlflowClient, name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def _promotion_tags(by: str | None, reason: str) -> dict[str, str]:
    return {"promoted_at": _now(), "promoted_by": by or getpass.getuser(), "promotion_reason": reason}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def promote(name: str, version: str, reason: str, by: str | None = None, client: MlflowClient | None = None) -> None:
    """Give ``version`` the champion alias, recording who, when and why on the version."""
    client, version = client or MlflowClient(), str(version)
    try:
        client.get_model_version(name, version)
    except MlflowException as error:
        versions = versions_of(name, client)
        raise ModelNotFound(f"{name} has no version {version}; its versions: {versions or 'none'}") from error
    current = champion_version(name, client)
    stack = _stack(name, client)
    if current is not None and (not stack or stack[-1] != str(current.version)):
        stack.append(str(current.version))  # the alias was moved outside these commands: keep it rollback-able
    if not stack or stack[-1] != version:
        stack.append(version)
    client.set_registered_model_tag(name, STACK_TAG, ",".join(stack[-STACK_LIMIT:]))
    client.set_registered_model_alias(name, CHAMPION, version)
    _set_tags(client, name, version, _promotion_tags(by, reason))
    log.warning("%s v%s is now %s (%s)", name, version, CHAMPION, reason)


def rollback(name: str, reason: str, by: str | None = None, client: MlflowClient | None = None) -> str:
    """Move the champion alias back to the version that held it before; returns that version."""
    client = client or MlflowClient()
    current = champion_version(name, client)
    if current is None:
        raise ModelNotFound(f"{name} has no {CHAMPION}: nothing to roll back")
    stack = _stack(name, client)
    if stack and stack[-1] == str(current.version):
        stack.pop()
    if not stack:
        raise ModelNotFound(f"{name} v{current.version} is the only {CHAMPION} it has had: nothing to roll back to")
    previous = stack[-1]
    by = by or getpass.getuser()
    client.set_registered_model_tag(name, STACK_TAG, ",".join(stack))
    client.set_registered_model_alias(name, CHAMPION, previous)
    _set_tags(
        client, name, current.version, {"rolled_back_at": _now(), "rolled_back_by": by, "rollback_reason": reason}
    )
    _set_tags(client, name, previous, _promotion_tags(by, f"rollback: {reason}"))
    log.warning("%s rolled back from v%s to v%s (%s)", name, current.version, previous, reason)
    return previous
