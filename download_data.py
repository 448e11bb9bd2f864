"""Fetch the datasets into the data folder, each verified against its pinned SHA-256.

    python download_data.py                      # into TWEETS_DATA_DIR (default ../shared/data)
    python download_data.py --data-dir data      # anywhere else

Files already there and right are left alone, so it is safe to run every time (make serve does).
"""

import argparse
import logging
import sys
from pathlib import Path

from tweet_sentiment.core.config import settings
from tweet_sentiment.training.download import SOURCES, DownloadError, download


def main(argv: list[str] | None = None) -> list[Path]:
    config = settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=config.data_dir)
    parser.add_argument("--base-url", default=config.data_base_url, help="GitHub's raw files, or a mirror of them")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        fetched = download(args.data_dir, args.base_url)
    except DownloadError as error:
        sys.exit(f"error: {error}")
    print(f"{args.data_dir}: {len(SOURCES)} files present and verified ({len(fetched)} downloaded now)")
    return fetched


if __name__ == "__main__":
    main()
