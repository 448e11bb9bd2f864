"""Per-brand negative share over time from what the server answered, with the surge points of the alert's rule.

    python brand_report.py --since 24h                  # the brands of TWEETS_BRANDS_FILE, 10-minute steps
    python brand_report.py --since 7d --step 1h --out brand_report

Reads the prediction log (every worker's), names each tweet's brands with the configured terms, and judges each
step with the rule Prometheus alerts on (tweet_sentiment/lifecycle/buzz.py), its baseline read from the whole log.
Writes brand_shares.png and brand_shares.csv into --out (default ./brand_report) and prints each brand's surges.
"""

import argparse
import sys
from pathlib import Path

from tweet_model import DECISION_CUT
from tweet_sentiment.core.brands import Brands
from tweet_sentiment.core.config import LABELS
from tweet_sentiment.core.prediction_log import PredictionLogError, read_prediction_log
from tweet_sentiment.lifecycle import buzz
from tweet_sentiment.lifecycle.drift import parse_since


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-dir", type=Path, help="folder of the data.*.log files (default: the service's)")
    parser.add_argument("--since", type=parse_since, help="plot from: 30m, 24h, 7d, or an ISO date-time")
    parser.add_argument("--step", default="10min", help="a point every (a pandas frequency; default 10min)")
    parser.add_argument("--out", type=Path, default=Path("brand_report"), help="folder for the PNG and CSV")
    args = parser.parse_args(argv)
    try:
        rows = read_prediction_log(args.log_dir).rows
    except PredictionLogError as error:
        sys.exit(f"error: {error}")
    brands = Brands.load()
    if not brands:
        sys.exit("error: no brand is configured (TWEETS_BRANDS_FILE)")
    rows = rows.assign(
        label=[LABELS[int(p >= DECISION_CUT)] for p in rows["prob_positive"]],
        brands=brands.match_all(rows["tweet"]),
    )
    shares = buzz.mark_surges(buzz.counts_by_brand(rows, args.step), buzz.SurgeRule(), args.step)
    if args.since is not None:
        shares = shares[shares["time"] >= args.since]
    args.out.mkdir(parents=True, exist_ok=True)
    shares.to_csv(args.out / "brand_shares.csv", index=False)
    buzz.plot(shares, "Negative share per brand (red: the surge rule holds)").savefig(args.out / "brand_shares.png")
    for brand, group in shares.groupby("brand"):
        tweets, negative = int(group["tweets"].sum()), int(group["negative"].sum())
        surges = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in group.loc[group["surge"], "time"]) or "none"
        print(f"{brand:24} {tweets:7,} tweets, {negative / max(tweets, 1):4.0%} negative; surges: {surges}")
    print(f"report: {args.out / 'brand_shares.png'}")


if __name__ == "__main__":
    main()
