"""What the batch job runs in Spark's executors: one pass over each Arrow batch answers its tweets as the server
answers them (the logged pyfunc, the language identifier, the French route, the brands), so that an executor
needs no more than requirements-batch.txt (and Apertium where French is translated).
"""

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

from tweet_model import DECISION_CUT
from tweet_model.pyfunc import load_predict_proba
from tweet_sentiment.core.brands import Brands
from tweet_sentiment.core.config import LABELS
from tweet_sentiment.core.french import FRENCH, ROUTE_MARK, reroute
from tweet_sentiment.core.language import detect_languages, language_warning

NO_TEXT, BLANK_TEXT = "no text", "only whitespace"
BLANK = re.compile(r"\s*")  # Python's \s: Unicode whitespace, as the server's schema refuses it


@dataclass(frozen=True)
class Answering:
    """What each task needs to answer as the server does: the model's folder (shipped with SparkContext.addFile)
    and its label, whether it answers French tweets by translation, the brands, and the text column."""

    model_folder: str
    label: str  # tweet-lstm/3@champion
    version: int
    alias: str | None
    french_by_translation: bool
    brands: Brands
    text_column: str

    def batches(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """mapInPandas: each batch with the answers' columns added; the model is loaded once per task."""
        from pyspark import SparkFiles

        predict = load_predict_proba(SparkFiles.get(self.model_folder))
        for batch in batches:
            yield pd.concat([batch, self.answers(predict, batch[self.text_column])], axis=1)

    def answers(self, predict, texts: pd.Series) -> pd.DataFrame:
        """The answer to each text, the columns of OUTPUT_FIELDS in their order: a row with no text, or only
        whitespace, is kept unscored with its reason."""
        texts_in = texts.tolist()
        reasons = [NO_TEXT if pd.isna(text) else BLANK_TEXT if BLANK.fullmatch(text) else None for text in texts_in]
        rows = [i for i, reason in enumerate(reasons) if reason is None]
        tweets = [texts_in[i] for i in rows]
        probs = predict(tweets) if tweets else []
        languages = detect_languages(tweets)
        routed = [False] * len(tweets)
        if self.french_by_translation and FRENCH in languages:
            probs, routed = reroute(predict, tweets, languages, probs)
        n = len(texts_in)
        label, language, warning = ([None] * n for _ in range(3))
        prob, model, brands = [math.nan] * n, [self.label] * n, [[] for _ in range(n)]
        for j, (i, named) in enumerate(zip(rows, self.brands.match_all(tweets), strict=True)):
            prob[i] = float(probs[j])
            label[i] = LABELS[int(prob[i] >= DECISION_CUT)]
            model[i] = self.label + ROUTE_MARK if routed[j] else self.label
            language[i] = languages[j]
            warning[i] = None if routed[j] else language_warning(languages[j])
            brands[i] = named
        columns = {
            "label": label,
            "prob_positive": prob,
            "model": model,
            "model_version": self.version,
            "model_alias": self.alias,
            "language": language,
            "warning": warning,
            "reason": reasons,
            "brands": brands,
        }
        return pd.DataFrame(columns, index=texts.index)
