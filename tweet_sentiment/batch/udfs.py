"""What the batch job runs in Spark's executors besides the model: only pandas and the language identifier, so
that an executor needs no more than requirements-batch.txt."""

import pandas as pd

from tweet_sentiment.core.language import detect_languages, language_warning


def languages(texts: pd.Series) -> pd.DataFrame:
    """The language of each tweet and the warning the server gives with it (tweet_sentiment.core.language)."""
    found = detect_languages(texts.tolist())
    return pd.DataFrame({"language": found, "warning": [language_warning(language) for language in found]})
