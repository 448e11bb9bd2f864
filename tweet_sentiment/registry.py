"""MLflow Model Registry -> BentoML model store, and finding a model by tag."""

import logging

import bentoml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

log = logging.getLogger(__name__)

CHAMPION = "champion"  # alias of the best version of each registered model


class ModelNotFound(LookupError):
    """The requested model tag is not in the BentoML store."""


def promote_if_best(name: str, version: str, accuracy: float, client: MlflowClient | None = None) -> bool:
    """Tag the version with its test accuracy and move the champion alias to it unless the holder is better."""
    client = client or MlflowClient()
    client.set_model_version_tag(name, version, "test_accuracy", repr(accuracy))  # exact: ties go to the newer
    try:
        holder = client.get_model_version_by_alias(name, CHAMPION)
        best = float(holder.tags.get("test_accuracy", "-1"))
    except MlflowException:
        best = -1.0
    if accuracy >= best:
        client.set_registered_model_alias(name, CHAMPION, version)
        log.info("%s version %s is the new %s (test accuracy %.4f)", name, version, CHAMPION, accuracy)
        return True
    return False


def import_to_bento(name: str, version: str, client: MlflowClient | None = None) -> bentoml.Model:
    """Import a registered MLflow model version into the BentoML store, keeping its lineage."""
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


def resolve_model(tag: str) -> bentoml.Model:
    """The BentoML model for ``tag``, or an error that names the tag and lists what the store has."""
    try:
        return bentoml.models.get(tag)
    except (bentoml.exceptions.NotFound, ValueError) as error:
        available = sorted(str(m.tag) for m in bentoml.models.list())
        raise ModelNotFound(
            f"model {tag!r} is not in the BentoML store; it has: {', '.join(available) or 'nothing'}. "
            "Train one with `python -m train lstm` (or logreg, transformer)."
        ) from error
