"""MLflow Model Registry: the champion rule, promotion and rollback by hand, and what to serve.

A model is named for serving either by a BentoML tag (``tweet-lstm:abc123``, ``tweet-lstm:latest``)
or by an MLflow alias (``tweet-lstm@champion``). An alias is resolved in the registry to a version,
whose BentoML import is found in the store (or imported on the spot). In a built Bento, the alias
is the one the build resolved: the Bento serves the model it packed, with no MLflow server around.
"""

import getpass
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import bentoml
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from tweet_sentiment.config import ROOT, settings

log = logging.getLogger(__name__)

CHAMPION = "champion"  # alias of the version that is served by default
STACK_TAG = "champion_stack"  # registered-model tag: the versions that held the alias, oldest first
STACK_LIMIT = 50
AUTOMATIC = "train (automatic)"


class ModelNotFound(LookupError):
    """The requested model is not in the registry or the BentoML store; the message lists what is."""


def in_built_bento() -> bool:
    """True when this code runs from a built Bento (``<bento>/src/tweet_sentiment``, ``<bento>/bento.yaml``)."""
    return (ROOT.parent / "bento.yaml").is_file()


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
    return float(((probs >= 0.5).astype(int) == test["label"].to_numpy()).mean())


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


def _versions(name: str, client: MlflowClient) -> str:
    return ", ".join(sorted((str(v.version) for v in client.search_model_versions(f"name='{name}'")), key=int))


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
        versions = _versions(name, client)
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


# MLflow -> BentoML, and the model to serve.


def import_to_bento(name: str, version: str, client: MlflowClient | None = None) -> bentoml.Model:
    """Import a registered MLflow model version into the BentoML store, keeping its lineage and its card."""
    from tweet_sentiment import model_card  # training side: the Bento does not pack it

    client = client or MlflowClient()
    model_version = client.get_model_version(name, version)
    run = client.get_run(model_version.run_id)
    labels = {
        "family": run.data.tags.get("family", "unknown"),
        "mlflow_model": name,
        "mlflow_model_version": str(version),
        "mlflow_run_id": model_version.run_id,
    }
    metadata = {
        **{key: round(value, 6) for key, value in run.data.metrics.items() if not key.startswith("curve_")},
        "base_model": run.data.params.get("base", ""),
        "dataset": run.data.params.get("dataset", ""),
        "model_card": model_card.for_version(name, version),  # served at /model-card, with no MLflow around
    }
    model = bentoml.mlflow.import_model(
        name,
        model_uri=f"models:/{name}/{version}",
        signatures={"predict": {"batchable": True}},
        labels=labels,
        metadata=metadata,
    )
    log.info("imported %s version %s into the BentoML store as %s", name, version, model.tag)
    return model


def model_label(name: str, version: str, alias: str | None = None) -> str:
    """``tweet-lstm/3@champion``: how a server names its model in every answer and metric."""
    return f"{name}/{version}" + (f"@{alias}" if alias else "")


@dataclass(frozen=True)
class ServedModel:
    """The model a server answers with: its BentoML tag and the registered model version behind it."""

    bento_tag: str
    name: str  # registered model
    version: str  # registered model version
    alias: str | None
    family: str
    run_id: str

    @property
    def label(self) -> str:
        return model_label(self.name, self.version, self.alias)

    @classmethod
    def of(cls, model: bentoml.Model, alias: str | None = None) -> "ServedModel":
        labels = model.info.labels
        return cls(
            bento_tag=str(model.tag),
            name=labels.get("mlflow_model", model.tag.name),
            version=labels.get("mlflow_model_version", "?"),
            alias=alias,
            family=labels.get("family", "unknown"),
            run_id=labels.get("mlflow_run_id", ""),
        )


def image_labels(bento_tag: str) -> dict[str, str]:
    """The labels of a Bento's image: the registered version it packs and the MLflow run that trained it."""
    [packed] = [bentoml.models.get(model.tag) for model in bentoml.get(bento_tag).info.all_models]
    served = ServedModel.of(packed)
    return {
        "org.opencontainers.image.title": bento_tag.split(":")[0],
        "tweet-sentiment.model": served.label,
        "tweet-sentiment.model.family": served.family,
        "tweet-sentiment.mlflow-run-id": served.run_id,
    }


def bento_imports(name: str) -> list[bentoml.Model]:
    """Every version of ``name`` in the BentoML store (none is an empty list, not an error)."""
    try:
        return bentoml.models.list(name)
    except bentoml.exceptions.NotFound:
        return []


def _store_listing() -> str:
    return ", ".join(sorted(str(m.tag) for m in bentoml.models.list())) or "nothing"


def _bento_model(tag: str) -> bentoml.Model:
    try:
        return bentoml.models.get(tag)
    except (bentoml.exceptions.NotFound, ValueError) as error:
        raise ModelNotFound(
            f"model {tag!r} is not in the BentoML store; it has: {_store_listing()}. "
            "Train one with `python -m train lstm` (or logreg, transformer)."
        ) from error


def registered_version(name: str, alias: str, client: MlflowClient) -> str:
    """The version holding ``name@alias``, or a ModelNotFound listing the registered models or the aliases."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as error:
        names = sorted(m.name for m in client.search_registered_models())
        raise ModelNotFound(
            f"no registered model {name!r} in MLflow ({settings().tracking_uri}); it has: "
            f"{', '.join(names) or 'nothing'}. Train one with `python -m train lstm` (or logreg, transformer)."
        ) from error
    if alias not in model.aliases:
        aliases = ", ".join(f"{a} -> v{v}" for a, v in sorted(model.aliases.items())) or "none"
        versions = _versions(name, client)
        raise ModelNotFound(
            f"{name!r} has no alias {alias!r}; its aliases: {aliases}; its versions: {versions or 'none'}. "
            f"Promote one with `python -m train promote {name} VERSION`."
        )
    return str(model.aliases[alias])


def bento_model_for(name: str, version: str, client: MlflowClient | None = None) -> bentoml.Model:
    """The newest BentoML import of a registered model version, imported now if there is none."""
    imports = [
        m
        for m in bento_imports(name)
        if m.info.labels.get("mlflow_model") == name and m.info.labels.get("mlflow_model_version") == version
    ]
    if imports:
        return max(imports, key=lambda m: m.info.creation_time)
    return import_to_bento(name, version, client)


@dataclass(frozen=True)
class ModelSpec:
    """How a model is named anywhere in the product, parsed in one place:

    - ``name@alias``: the registered version an MLflow alias points to (``tweet-lstm@champion``);
    - ``name/version``: a registered version, also as servers label their answers (``tweet-lstm/3``,
      ``tweet-lstm/3@champion``: the alias then only says how it was asked for);
    - anything else is a BentoML tag (``tweet-lstm:abc123``, ``tweet-lstm:latest``, ``tweet-lstm``).
    """

    name: str
    alias: str | None = None
    version: str | None = None  # registered version
    bento_tag: str | None = None

    @classmethod
    def parse(cls, spec: str) -> "ModelSpec":
        head, _, alias = spec.partition("@")
        name, slash, version = head.partition("/")
        if slash:
            if not (name and version.isdigit()):
                raise ModelNotFound(f"{spec!r}: expected NAME/VERSION with a numeric version, e.g. tweet-lstm/3")
            return cls(name, alias or None, version)
        if alias:
            return cls(name, alias)
        return cls(spec.split(":", 1)[0], bento_tag=spec)

    def registered_version(self, client: MlflowClient | None = None) -> str:
        """The registered version this names (an alias resolved in the registry)."""
        if self.version:
            return self.version
        if not self.alias:
            raise ModelNotFound(f"{self.bento_tag!r} is a BentoML tag, not a registered version")
        return registered_version(self.name, self.alias, client or MlflowClient(settings().tracking_uri))


def resolve_model(spec: str) -> ServedModel:
    """The model a spec names (``ModelSpec``), imported into BentoML if it never was; ModelNotFound lists
    what exists."""
    model = ModelSpec.parse(spec)
    if model.bento_tag:
        return ServedModel.of(_bento_model(model.bento_tag))
    if in_built_bento():  # the build resolved the spec and packed that model: MLflow is not needed
        packed = bento_imports(model.name)
        if len(packed) != 1:
            raise ModelNotFound(f"this Bento packs {_store_listing()}: no single {model.name!r} for {spec!r}")
        return ServedModel.of(packed[0], model.alias)
    client = MlflowClient(settings().tracking_uri)
    version = model.registered_version(client)
    return ServedModel.of(bento_model_for(model.name, version, client), model.alias)
