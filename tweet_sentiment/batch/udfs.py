"""What the batch job runs in Spark's executors besides the model: pandas, the language identifier and the French
route, so that an executor needs no more than requirements-batch.txt (and Apertium where French is translated)."""

import pandas as pd

from tweet_sentiment.core.french import FRENCH, lexicon, translate_to_english
from tweet_sentiment.core.language import detect_languages, language_warning


def languages(texts: pd.Series, french_by_translation: bool = False) -> pd.DataFrame:
    """The language of each tweet and the warning the server gives with it (tweet_sentiment.core.language), the
    text the model scores, and, for a French tweet answered by translation as the server answers it
    (tweet_sentiment.core.french), its English for the model and its lexicon score (else null)."""
    found = detect_languages(texts.tolist())
    rows = pd.DataFrame(
        {
            "language": found,
            "warning": [language_warning(language) for language in found],
            "text": texts.tolist(),
            "lexicon": [None] * len(found),
        },
        dtype=object,
    )
    if french_by_translation:
        french = [i for i, language in enumerate(found) if language == FRENCH]
        tweets = texts.iloc[french].tolist()
        rows.loc[french, "text"] = translate_to_english(tweets)
        rows.loc[french, "lexicon"] = lexicon(tweets)
        rows.loc[french, "warning"] = None
    return rows
