"""Bidirectional LSTM on GloVe 6B-50d embeddings: trained in Keras, served from ONNX.

The Keras model takes strings (its TextVectorization is inside). The export writes the vocabulary and
an ONNX graph of the rest, so serving needs ONNX Runtime only (tweet_model.runtime.LSTMRuntime).
Keras and onnx are imported inside the functions that use them: loading the families loads no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tweet_model import DECISION_CUT
from tweet_model.runtime import ONNX_MODEL, VOCABULARY, LSTMRuntime
from tweet_model.text import clean_tweets
from tweet_sentiment.core.config import SEED
from tweet_sentiment.training.data import Split, targets
from tweet_sentiment.training.family import Curves, ModelFamily
from tweet_sentiment.training.glove import embedding_matrix


@dataclass(frozen=True)
class LSTMConfig:
    max_tokens: int = 20_000
    sequence_length: int = 40
    units: int = 64
    dropout: float = 0.3
    learning_rate: float = 2e-3
    batch_size: int = 64
    epochs: int = 8
    patience: int = 2
    balance_classes: bool = True  # both classes weigh the same (airline is 80% negative): +0.9 pt TweetEval val
    model_name: str = "tweet-lstm"


def build_model(texts: np.ndarray, config: LSTMConfig):
    """String in, P(positive) out: vectorizer -> GloVe embedding -> BiLSTM -> sigmoid."""
    import keras

    vectorizer = keras.layers.TextVectorization(
        max_tokens=config.max_tokens,
        standardize=None,
        split="whitespace",
        output_sequence_length=config.sequence_length,
    )
    vectorizer.adapt(texts)
    weights, coverage = embedding_matrix(vectorizer.get_vocabulary())
    print(f"GloVe covers {coverage:.1%} of the {len(weights)}-word vocabulary")

    inputs = keras.Input(shape=(1,), dtype="string", name="text")
    x = vectorizer(inputs)
    x = keras.layers.Embedding(
        *weights.shape, embeddings_initializer=keras.initializers.Constant(weights), mask_zero=True
    )(x)
    x = keras.layers.SpatialDropout1D(config.dropout / 2)(x)
    # Unrolled: sequences have a fixed length, and training steps run faster than with a while-loop.
    x = keras.layers.Bidirectional(keras.layers.LSTM(config.units, unroll=True))(x)
    x = keras.layers.Dropout(config.dropout)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="prob_positive")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="binary_crossentropy",
        metrics=[hard_label_accuracy, keras.metrics.AUC(name="auc")],
    )
    return model


def hard_label_accuracy(targets, probs):
    """Accuracy against the labels the targets round to: Keras' own compares a distilled soft target (0.73) with
    the predicted class (1), and counts nearly every distilled tweet wrong."""
    import keras

    # Flat: the targets come as (tweets,), the model's output as (tweets, 1), which would broadcast to a square.
    hard = keras.ops.reshape(keras.ops.cast(targets, probs.dtype) >= DECISION_CUT, (-1,))  # labels come as int
    return keras.ops.mean(keras.ops.equal(hard, keras.ops.reshape(probs >= DECISION_CUT, (-1,))))


def fit(split: Split, config: LSTMConfig, folder: Path) -> Curves:
    import keras

    keras.utils.set_random_seed(SEED)
    train, val = (np.array(clean_tweets(s["text"].tolist()), dtype=object) for s in (split.train, split.val))
    model = build_model(train, config)
    history = model.fit(
        train,
        targets(split.train),  # the teacher's probabilities when distilled
        sample_weight=class_weights(split.train["label"].to_numpy()) if config.balance_classes else None,
        validation_data=(val, split.val["label"].to_numpy()),
        epochs=config.epochs,
        batch_size=config.batch_size,
        verbose=2,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_auc", mode="max", patience=config.patience, restore_best_weights=True
            )
        ],
    )
    model.save(folder / "model.keras")
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Per-row weights under which each class weighs half of the total."""
    counts = np.bincount(labels, minlength=2)
    return (len(labels) / (2 * counts))[labels].astype("float32")


class KerasLSTM:
    """The native Keras model, whose first layer is the TextVectorization: it takes strings."""

    def __init__(self, folder: Path, sequence_length: int = 40):
        import keras

        self.model = keras.saving.load_model(folder / "model.keras", compile=False)  # to predict, not to train

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        # predict_on_batch: one graph call, no tf.data pipeline (model.predict costs ms per call).
        return np.asarray(self.model.predict_on_batch(np.asarray(texts, dtype=object))).reshape(-1)


def _onnx_gates(weights: np.ndarray) -> np.ndarray:
    """Keras orders an LSTM's gates input, forget, cell, output; ONNX input, output, forget, cell."""
    i, f, c, o = np.split(weights, 4, axis=-1)
    return np.concatenate([i, o, f, c], axis=-1)


def export(native: Path, served: Path, config: LSTMConfig) -> None:
    """Write the vocabulary and the ONNX graph: embedding lookup, bidirectional LSTM, dense sigmoid.

    Written with ONNX's own LSTM operator, whose ``sequence_lens`` input does what the Keras mask does
    (tf2onnx, the converter, does not support Keras 3). The graph is four operators over the trained weights.
    """
    import keras
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = keras.saving.load_model(native / "model.keras", compile=False)
    [vectorizer] = [layer for layer in model.layers if isinstance(layer, keras.layers.TextVectorization)]
    [embedding] = [layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)]
    [bilstm] = [layer for layer in model.layers if isinstance(layer, keras.layers.Bidirectional)]
    vocabulary = vectorizer.get_vocabulary()
    units = bilstm.forward_layer.units

    def directions(index: int) -> np.ndarray:  # ONNX stacks forward, backward: W, R, then both biases
        parts = [layer.get_weights()[index] for layer in (bilstm.forward_layer, bilstm.backward_layer)]
        return np.stack([_onnx_gates(part).T if index < 2 else _onnx_gates(part) for part in parts])

    bias = directions(2)
    dense_kernel, dense_bias = model.layers[-1].get_weights()
    weights = {
        "embedding": embedding.get_weights()[0],
        "W": directions(0),
        "R": directions(1),
        "B": np.concatenate([bias, np.zeros_like(bias)], axis=-1),  # Keras has no separate recurrent bias
        "dense_kernel": dense_kernel,
        "dense_bias": dense_bias,
    }
    initializers = [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()]
    initializers.append(numpy_helper.from_array(np.array([-1, 2 * units], dtype=np.int64), "flat"))
    nodes = [
        helper.make_node("Gather", ["embedding", "token_ids"], ["vectors"]),
        helper.make_node("Transpose", ["vectors"], ["steps"], perm=[1, 0, 2]),  # ONNX's LSTM is time-major
        helper.make_node(
            "LSTM", ["steps", "W", "R", "B", "lengths"], ["", "last"], direction="bidirectional", hidden_size=units
        ),
        helper.make_node("Transpose", ["last"], ["last_by_tweet"], perm=[1, 0, 2]),
        helper.make_node("Reshape", ["last_by_tweet", "flat"], ["features"]),
        helper.make_node("Gemm", ["features", "dense_kernel", "dense_bias"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["prob_positive"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tweet_lstm",
        [
            helper.make_tensor_value_info("token_ids", TensorProto.INT64, ["tweets", "steps"]),
            helper.make_tensor_value_info("lengths", TensorProto.INT32, ["tweets"]),
        ],
        [helper.make_tensor_value_info("prob_positive", TensorProto.FLOAT, ["tweets", 1])],
        initializers,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(onnx_model, {"vocabulary_size": str(len(vocabulary))})
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, served / ONNX_MODEL)
    (served / VOCABULARY).write_text("\n".join(vocabulary), encoding="utf-8")


FAMILY = ModelFamily(
    "lstm",
    LSTMConfig,
    fit,
    LSTMRuntime,
    ("onnxruntime",),
    export=export,
    native=KerasLSTM,
    predictor_settings=lambda config: {"sequence_length": config.sequence_length},
)
