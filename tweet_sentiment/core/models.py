"""How a model is named anywhere in the product, and the model to serve: registered in MLflow, imported into BentoML.

A model is named for serving either by a BentoML tag (``tweet-lstm:abc123``, ``tweet-lstm:latest``)
or by an MLflow alias (``tweet-lstm@champion``). An alias is resolved in the registry to a version,
whose BentoML import is found in the store (or imported on the spot). In a built Bento, the alias
is the one the build resolved: the Bento serves the model it packed, with no MLflow server around.
"""

import logging
from dataclasses import dataclass

import bentoml
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tweet_sentiment.core.config import ROOT, settings

log = logging.getLogger(__name__)

CHAMPION = "champion"  # alias of the version that is served by default
MODEL_CARD = "model_card.md"  # the card each training run logs; a BentoML import carries it


class ModelNotFound(LookupError):
    """The requested model is not in the registry or the BentoML store; the message lists what is."""


def in_built_bento() -> bool:
    """True when this code runs from a built Bento (``<bento>/src/tweet_sentiment``, ``<bento>/bento.yaml``)."""
    return (ROOT.parent / "bento.yaml").is_file()


# MLflow -> BentoML, and the model to serve.


def import_to_bento(name: str, version: str, client: MlflowClient | None = None) -> bentoml.Model:
    """Import a registered MLflow model version into the BentoML store, keeping its lineage and the model card
    its run logged."""
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
        "model_card": _logged_card(model_version.run_id),  # served at /model-card, with no MLflow around
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


def _logged_card(run_id: str) -> str:
    try:
        return mlflow.artifacts.load_text(f"runs:/{run_id}/{MODEL_CARD}")
    except (MlflowException, OSError):  # a run from before cards were logged
        return ""


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


def versions_of(name: str, client: MlflowClient) -> str:
    return ", ".join(sorted((str(v.version) for v in client.search_model_versions(f"name='{name}'")), key=int))


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
        versions = versions_of(name, client)
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
