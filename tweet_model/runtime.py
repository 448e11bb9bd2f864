"""Each family's served model in a light runtime: no TensorFlow, PyTorch or transformers at serving time.

- ``lstm``: the BiLSTM exported to ONNX; the vocabulary lookup runs here, and each batch is cut to its
  longest tweet, so the model's cost follows the tweets, not the padding (masked steps change nothing).
- ``transformer``: the fine-tuned encoder exported to ONNX (float, or int8 where that stays as right), with
  its ``tokenizers`` tokenizer (padding set at export).
- ``logreg``: the scikit-learn pipeline is its own light runtime (skl2onnx's TF-IDF did not reproduce it:
  docs/serving.md).

ONNX Runtime takes ``OMP_NUM_THREADS`` threads per session when it is set (the server sets it per worker),
else one per core.
"""

import os
from pathlib import Path
from typing import ClassVar

import numpy as np

ONNX_MODEL = "model.onnx"
VOCABULARY = "vocabulary.txt"  # the LSTM's, one token a line, row order: padding "", then "[UNK]", then words
TOKENIZER = "tokenizer.json"
OOV = 1  # "[UNK]"'s row, as in Keras' TextVectorization


class ExportedModelError(RuntimeError):
    """An exported model file is missing or does not fit its runtime."""


def onnx_session(path: Path):
    """An ONNX Runtime session with full graph optimization, created once per loaded model."""
    import onnxruntime as ort

    if not path.is_file():
        raise ExportedModelError(f"the exported model {path.name} is missing from {path.parent}: retrain or re-export")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "0"))  # 0: ONNX Runtime's default
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own, unexported, exception types
        raise ExportedModelError(f"{path} is not a model ONNX Runtime can load: {error}") from error


class LSTMRuntime:
    """Token ids from the vocabulary, then the exported BiLSTM."""

    family: ClassVar[str] = "lstm"

    def __init__(self, folder: Path, sequence_length: int = 40):
        vocabulary = (folder / VOCABULARY).read_text(encoding="utf-8").split("\n")
        self.index = {word: row for row, word in enumerate(vocabulary)}
        self.sequence_length = sequence_length
        self.session = onnx_session(folder / ONNX_MODEL)
        exported = self.session.get_modelmeta().custom_metadata_map.get("vocabulary_size")
        if exported != str(len(vocabulary)):  # another export's vocabulary would index the wrong rows
            raise ExportedModelError(
                f"{VOCABULARY} has {len(vocabulary)} words, {ONNX_MODEL} was exported with {exported}"
            )

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids, padded with 0 to the batch's longest tweet (at most ``sequence_length``), and lengths."""
        rows = [[self.index.get(token, OOV) for token in text.split()[: self.sequence_length]] for text in texts]
        lengths = np.fromiter((len(row) for row in rows), dtype=np.int32, count=len(rows))
        ids = np.zeros((len(rows), max(1, int(lengths.max(initial=0)))), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
        return ids, lengths

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        ids, lengths = self.encode(texts)
        return self.session.run(None, {"token_ids": ids, "lengths": lengths})[0].reshape(-1)


class TransformerRuntime:
    """The ``tokenizers`` tokenizer, then the exported encoder and classifier head."""

    family: ClassVar[str] = "transformer"
    # Tweets a session call at most: the attention holds tweets x heads x length² floats per layer, so one call
    # over a whole evaluation set (tens of thousands of tweets) took the memory of the machine.
    CALL_SIZE: ClassVar[int] = 64

    def __init__(self, folder: Path, max_length: int = 64, model_file: str = ONNX_MODEL):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        self.tokenizer.enable_truncation(max_length)
        self.session = onnx_session(folder / model_file)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.concatenate(
            [self._predict(texts[i : i + self.CALL_SIZE]) for i in range(0, len(texts), self.CALL_SIZE)] or [[]]
        ).astype(np.float32)

    def _predict(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0].reshape(-1)


class LogRegRuntime:
    """The TF-IDF + logistic regression pipeline, saved with joblib."""

    family: ClassVar[str] = "logreg"

    def __init__(self, folder: Path):
        import joblib

        self.pipeline = joblib.load(folder / "pipeline.joblib")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self.pipeline.predict_proba(texts)[:, 1]


RUNTIMES = {runtime.family: runtime for runtime in (LogRegRuntime, LSTMRuntime, TransformerRuntime)}
