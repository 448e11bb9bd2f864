"""Compare the ways to answer French tweets on the French set and write benchmarks/results/FRENCH.md; record how
the served route does with that version (its run's metrics, its BentoML import), which decides whether servers
answer French tweets with it. New versions are measured when they are trained.

python -m train.french tweet-lstm@champion
"""

import sys

from tweet_sentiment.core.config import ROOT
from tweet_sentiment.lifecycle.french_routes import compare, record, report
from tweet_sentiment.lifecycle.tracking import setup_mlflow

if __name__ == "__main__":
    setup_mlflow()
    spec = sys.argv[1] if len(sys.argv) > 1 else "tweet-lstm@champion"
    print(report(compare(spec), ROOT / "benchmarks" / "results").read_text())
    print(f"recorded on {spec}: {record(spec)}")
