"""The notebooks run headless, top to bottom, on small samples and the test session's MLflow runs."""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from tweet_sentiment.core.config import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SPARK = pytest.mark.spark  # the batch-scoring notebook starts a local Spark


def outputs(notebook) -> str:
    return json.dumps([cell.get("outputs", []) for cell in notebook.cells])


@pytest.mark.parametrize(
    "path", [pytest.param(p, id=p.name, marks=[SPARK] if "batch" in p.name else []) for p in NOTEBOOKS]
)
def test_notebook_runs(path, trained, monkeypatch):
    monkeypatch.setenv("NOTEBOOK_SAMPLE", "300")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    text = outputs(notebook)
    assert '"output_type": "error"' not in text
    if "comparison" in path.name:
        assert trained["lstm"].name in text and trained["logreg"].name in text
        assert "image/png" in text  # ROC curves and confusion matrices were drawn
    if "batch" in path.name:
        assert "scored 300 tweets with tweet-lstm/" in text and "image/png" in text
    if "campaign" in path.name:
        assert "United" in text and "image/png" in text  # the brands' table and their hourly shares


def test_saved_notebooks_are_executed_and_small():
    assert len(NOTEBOOKS) == 4
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(cell.get("execution_count") for cell in code), f"{path.name} is saved unexecuted"
        assert path.stat().st_size < 600_000, f"{path.name} carries too much output"
