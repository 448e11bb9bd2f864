"""Compare the ways to answer French tweets on the French set and write benchmarks/results/FRENCH.md.

python -m train.french tweet-lstm@champion
"""

import sys

from tweet_sentiment.core.config import ROOT
from tweet_sentiment.lifecycle.french_routes import compare, report
from tweet_sentiment.lifecycle.tracking import setup_mlflow

if __name__ == "__main__":
    setup_mlflow()
    path = report(compare(sys.argv[1] if len(sys.argv) > 1 else "tweet-lstm@champion"), ROOT / "benchmarks" / "results")
    print(path.read_text())
