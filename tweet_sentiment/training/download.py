"""Fetch the datasets from their public sources, each pinned to a commit and a SHA-256.

Every file is checked against its pinned digest; a file already there and right is left alone.
A download goes to ``NAME.part``, resumes from there (HTTP Range) after a broken connection,
is retried with backoff, and is renamed into place only once its digest is right: no half file is
ever left looking complete. httpx (already a dependency) does the HTTP, tqdm the progress bar.
"""

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    path: str  # where it goes in the data folder
    repo: str  # OWNER/REPO on GitHub
    commit: str
    remote: str  # its path in the repository
    sha256: str

    def url(self, base: str) -> str:
        return f"{base.rstrip('/')}/{self.repo}/{self.commit}/{self.remote}"


AIRLINE = ("Ramlah0/Twitter-US-Airline-Sentiment-Analysis", "b485e56d824c0c0c0ed573932a98db309523bc75")
S140 = ("geraldzakwan/iykra-sentiment-analysis", "0f8dae787c1e4d239f8b03a04dccfd6ddb77a6cc")
S140_MANUAL = ("anfelipe31/Sentiment-140-dataset", "8321bacd046d9f340d42602dd25da5090b94fc68")
TWEETEVAL = ("cardiffnlp/tweeteval", "4fbd22cd78421f05b1ecdb4fc5725bc7a7bd8f66")

# The origins and commits of ../shared/data/SOURCES.md; the digests of its byte-identical copies.
SOURCES = (
    Source(
        "airline/tweets.csv", *AIRLINE, "Tweets.csv", "459a0a7259369f3c831bb9adba509703c76b0e3707614b1be65883bc8e6bab9e"
    ),
    Source(
        "sentiment140_100k/positive.txt",
        *S140,
        "data/tweets_100k/positive.txt",
        "9974fca006a8ba35d363f2444712b16479948ba2fc9613a2d42cdd143251769d",
    ),
    Source(
        "sentiment140_100k/negative.txt",
        *S140,
        "data/tweets_100k/negative.txt",
        "91305124952116f2a29e1b1024eb74f74f6bfdf566189ffed2f0bfa9b181a3b7",
    ),
    Source(
        "sentiment140_manual_test/testdata.manual.2009.06.14.csv",
        *S140_MANUAL,
        "testdata.manual.2009.06.14.csv",
        "a6c3d882a40168164385b858bc413065d12e91e5c2719eccc0a0635fcb50b0f5",
    ),
    *(
        Source(f"tweeteval_sentiment/{name}", *TWEETEVAL, f"datasets/sentiment/{name}", digest)
        for name, digest in (
            ("mapping.txt", "c0572796fbe261d8ea5fd16c5061076fbba49bc69fc865d6abccaf60daacee24"),
            ("test_labels.txt", "6afb4afe9374d1f983bcf9a7c79b108d0f37fdf020a83f30488309bed215db9d"),
            ("test_text.txt", "09a93a55c63fd93f97485ef7302889d7edb4091cd49733aa37da094f0bfa0675"),
            ("val_labels.txt", "b4566926c72e2e4e2916c864def94e76c4cdde52446af2c7ba4fc2006e057e51"),
            ("val_text.txt", "e5b021e6fc45064c260b09814b803d8f56cada519c4d952d72f43d48a350a964"),
        )
    ),
)


class DownloadError(RuntimeError):
    """A file could not be fetched or is not what was pinned; the message names the file and the URL."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, target: Path, expected: str, attempts: int = 4, timeout: float = 30) -> None:
    """Download url to target via ``target.part``, resuming and retrying; verify, then rename into place."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        done = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={done}-"} if done else {}
        try:
            with httpx.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as response:
                if response.status_code == 416:  # asked past the end: the part is whole (or wrong)
                    break
                response.raise_for_status()
                resumed = response.status_code == 206
                total = int(response.headers.get("content-length", 0)) + (done if resumed else 0)
                with (
                    part.open("ab" if resumed else "wb") as file,
                    tqdm(total=total or None, initial=done if resumed else 0, unit="B", unit_scale=True,
                         desc=target.name, leave=False) as bar,
                ):  # fmt: skip
                    for chunk in response.iter_bytes(1 << 16):
                        file.write(chunk)
                        bar.update(len(chunk))
            break
        except httpx.HTTPStatusError as error:
            if error.response.status_code < 500:  # not found, forbidden: trying again will not help
                raise DownloadError(f"{target.name}: {url} answered {error.response.status_code}") from None
            problem = f"HTTP {error.response.status_code}"
        except httpx.TransportError as error:
            problem = f"{type(error).__name__}: {error}"
        if attempt == attempts:
            raise DownloadError(f"{target.name}: {url} unreachable after {attempts} attempts ({problem})")
        log.warning("%s: %s; retrying (%d of %d) from byte %d", target.name, problem, attempt, attempts, done)
        time.sleep(min(2**attempt, 30) * 0.25)
    got = sha256(part)
    if got != expected:
        part.unlink()
        raise DownloadError(f"{target.name}: {url} gave SHA-256 {got}, expected {expected}; nothing kept")
    part.replace(target)


def download(data_dir: Path, base_url: str, sources: tuple[Source, ...] = SOURCES) -> list[Path]:
    """Make the data folder complete and verified; returns the files it fetched."""
    fetched = []
    for source in sources:
        target = data_dir / source.path
        if target.is_file() and sha256(target) == source.sha256:
            continue
        if target.is_file():
            log.warning("%s does not match its pinned SHA-256: fetching it again", target)
        log.info("fetching %s", source.url(base_url))
        fetch(source.url(base_url), target, source.sha256)
        fetched.append(target)
    return fetched
