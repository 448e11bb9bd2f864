"""Figure files say what they measured, and the ones whose code changed since are found."""

import subprocess

import pytest

from tweet_sentiment.core.config import ROOT
from tweet_sentiment.lifecycle import figures


def test_every_figure_file_is_listed_with_code_that_exists():
    listed = {figure.path for figure in figures.FIGURES}
    written = {str(p.relative_to(ROOT)) for p in (ROOT / "benchmarks" / "results").rglob("*.md")}
    written |= {str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "model_cards").glob("*.md")}
    assert written <= listed
    for figure in figures.FIGURES:
        assert all((ROOT / path).exists() for path in figure.code), figure.path


def test_a_figure_goes_stale_when_its_code_changes_after_it_was_measured(tmp_path, monkeypatch):
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)  # fmt: skip

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "other.py").write_text("y = 1\n")
    git("add", ".")
    git("commit", "-qm", "code")
    monkeypatch.setattr(figures, "ROOT", tmp_path)
    figure = figures.FigureFile("FIGURES.md", "make figures", ("code.py",))
    monkeypatch.setattr(figures, "FIGURES", [figure])
    assert figures.stale_reason(figure) == "no stamp: it does not say what it measured"
    figures.stamped(tmp_path / "FIGURES.md", "# figures\n")
    assert figures.stale_reason(figure) is None
    (tmp_path / "other.py").write_text("y = 2\n")  # not its code
    git("commit", "-qam", "other")
    assert figures.stale_reason(figure) is None
    (tmp_path / "code.py").write_text("x = 2\n")
    assert figures.stale() == {}  # uncommitted changes count once measured on: the stamp says so
    figures.stamped(tmp_path / "FIGURES.md", "# figures\n")
    assert figures.stale_reason(figure).startswith("measured on uncommitted changes")
    git("commit", "-qam", "changed the code")
    figures.stamped(tmp_path / "FIGURES.md", "# figures\n")
    assert figures.stale_reason(figure) is None
    (tmp_path / "code.py").write_text("x = 3\n")
    git("commit", "-qam", "changed it again")
    assert "1 commit(s) changed its code since" in figures.stale()["FIGURES.md"]


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout: no history to compare with")
def test_no_figure_file_is_stale_but_those_allowed_to_lag():
    lagging = {figure.path for figure in figures.FIGURES if figure.may_lag}
    assert {path: why for path, why in figures.stale().items() if path not in lagging} == {}
