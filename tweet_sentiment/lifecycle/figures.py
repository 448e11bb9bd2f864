"""Every file of figures, what it measured, and whether its code has changed since.

Each figure file starts with a stamp its writer puts there (``stamped``): the commit of the code it measured,
the date, the machine's cores and the command that regenerates it. A file is stale when a path of the code it
measures has changed since that commit, or had uncommitted changes when it was measured.

    python -m tweet_sentiment.lifecycle.figures      # the stale files, with the command that regenerates each
"""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from tweet_sentiment.core.config import ROOT

STAMP = re.compile(r"<!-- measured: commit=(?P<commit>[0-9a-f]+)(?P<dirty>\+uncommitted)? date=(?P<date>\S+) ")
# What a server runs: a change here changes every served figure.
SERVING = (
    "service.py",
    "bentofile.yaml",
    "requirements-serve.lock",
    "tweet_model",
    "tweet_sentiment/core",
    "tweet_sentiment/serve",
)
# What a trained model's figures come from.
TRAINING = ("tweet_model", "tweet_sentiment/training", "tweet_sentiment/lifecycle/evaluate.py",
            "tweet_sentiment/lifecycle/behaviour.py", "tweet_sentiment/lifecycle/model_card.py", "train")  # fmt: skip


@dataclass(frozen=True)
class FigureFile:
    path: str  # from the project's root
    command: str  # what regenerates it
    code: tuple[str, ...]  # what it measured: a change there makes it stale
    may_lag: str | None = None  # why it may stay stale for a while; None: never


# The load locust puts on a server: its users and how they are run.
LOAD = ("benchmarks/run.py", "benchmarks/locustfile.py")


def bench(name: str, command: str, *code: str, may_lag: str | None = None) -> FigureFile:
    return FigureFile(f"benchmarks/results/{name}", command, (*SERVING, *code), may_lag)


FIGURES = [
    bench("REPORT.md", "python -m benchmarks.run", *LOAD, "benchmarks/model_only.py", "benchmarks/echo_service.py"),
    bench("BATCH.md", "python -m benchmarks.batch", "tweet_sentiment/batch", "benchmarks/batch.py", *LOAD),
    bench("BRANDS.md", "python -m benchmarks.brands", "brands.yaml", "benchmarks/brands.py", *LOAD),
    bench("FLOODS.md", "python -m benchmarks.floods", "benchmarks/floods.py"),
    bench("FOLLOWING.md", "python -m benchmarks.following", "benchmarks/following.py"),
    bench("IMAGE.md", "python -m benchmarks.image", "deploy", "benchmarks/image.py", "harness/containers.py"),
    bench("MIDDLEWARES.md", "python -m benchmarks.middlewares", "benchmarks/middlewares.py"),
    bench("REPLICAS.md", "python -m benchmarks.replicas", "benchmarks/replicas.py"),
    bench("SHADOW.md", "python -m benchmarks.shadow", "benchmarks/shadow.py", *LOAD),
    bench("SOAK.md", "python -m benchmarks.soak", "benchmarks/soak.py", *LOAD,
          may_lag="a 30-minute run of the whole machine: rerun before a release, not for every serving change"),
    bench("VERSUS_MLFLOW.md", "python -m benchmarks.versus_mlflow", "benchmarks/versus_mlflow.py", *LOAD),
    bench("profiles/ManyTweets-8-gil.md", "python -m benchmarks.profile --user ManyTweets --users 8 --gil",
          "benchmarks/profile.py", *LOAD,
          may_lag="a profile, where a worker's time went when it was taken: a diagnosis, not a claim"),
    FigureFile("benchmarks/results/FRENCH.md", "python -m train.french",
               ("tweet_model", "tweet_sentiment/core/french.py", "tweet_sentiment/lifecycle/french_routes.py",
                "train/french.py", "data/french_tweets")),
    *(FigureFile(f"docs/model_cards/{card.name}", "make train", TRAINING) for card in sorted(
        (ROOT / "docs" / "model_cards").glob("*.md"))),
    FigureFile("README.md", "make train", TRAINING),  # its results table
]  # fmt: skip


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def stamp(command: str, code: tuple[str, ...], commit: str | None = None) -> str:
    """The stamp of figures measured now on this checkout's code, or (``commit``) by models trained at a commit."""
    dirty = "" if commit or not git("status", "--porcelain", "--", *code) else "+uncommitted"
    commit = commit or git("rev-parse", "--short=12", "HEAD")
    return f'<!-- measured: commit={commit}{dirty} date={date.today()} cores={os.cpu_count()} command="{command}" -->'


def figure_file(path: Path) -> FigureFile:
    """Its entry in FIGURES, by path, else by name (a report written elsewhere, as tests do); a file not listed (a
    profile of another load) is served figures, remade by hand."""
    path = path.resolve()
    relative = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    listed = next((f for f in FIGURES if f.path == relative), None)
    named = next((f for f in FIGURES if Path(f.path).name == path.name), None)
    return listed or named or FigureFile(relative, "see the file", SERVING)


def stamped(path: Path, text: str) -> Path:
    """Write a figure file, its stamp first: its entry in FIGURES says what it measures and how it is remade."""
    figure = figure_file(path)
    path.write_text(f"{stamp(figure.command, figure.code)}\n{text}")
    return path


def stale_reason(figure: FigureFile) -> str | None:
    """Why ``figure`` is stale (its code changed since it was measured, or it was never stamped); None if not."""
    path = ROOT / figure.path
    found = STAMP.search(path.read_text()) if path.is_file() else None
    if found is None:
        return "no stamp: it does not say what it measured"
    if found["dirty"]:
        return f"measured on uncommitted changes to its code ({found['date']})"
    try:
        changed = git("log", "--format=%h %s", f"{found['commit']}..HEAD", "--", *figure.code)
    except subprocess.CalledProcessError:
        return f"its commit {found['commit']} is not in this clone's history"
    if changed:
        commits = changed.splitlines()
        return f"{len(commits)} commit(s) changed its code since {found['commit']} ({found['date']}): {commits[0]}"
    return None


def stale() -> dict[str, str]:
    """Each stale figure file and why."""
    return {figure.path: reason for figure in FIGURES if (reason := stale_reason(figure))}


def main() -> int:
    found = stale()
    for figure in FIGURES:
        if figure.path in found:
            lag = f" (may lag: {figure.may_lag})" if figure.may_lag else ""
            print(f"{figure.path}: {found[figure.path]}{lag}\n    regenerate: {figure.command}")
    print(f"{len(found)} of {len(FIGURES)} figure files stale")
    return 1 if any(not figure.may_lag for figure in FIGURES if figure.path in found) else 0


if __name__ == "__main__":
    sys.exit(main())
