"""The CI workflow and the Kubernetes manifest: valid YAML that still does what the README says."""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from tweet_sentiment.core.config import ROOT


def test_workflow_tests_builds_checks_the_image_and_pushes_only_what_passed():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    assert {"push", "pull_request"} <= set(workflow[True])  # YAML 1.1 reads the key `on` as True
    test_steps = " ".join(str(step.get("run", "")) for step in workflow["jobs"]["test"]["steps"])
    assert "bash .ci/run" in test_steps
    image = workflow["jobs"]["image"]
    assert image["needs"] == "test"
    runs = [str(step.get("run", "")) for step in image["steps"]]
    order = [
        next(i for i, run in enumerate(runs) if command in run)
        for command in (
            "make image",
            'TWEETS_IMAGE="$IMAGE" .venv/bin/python -m pytest -m slow tests/system/test_image.py',
            "docker push",
        )
    ]
    assert order == sorted(order)  # built, checked by the image test, then pushed (a failed step stops the job)


def test_the_published_image_packs_the_makefiles_recipe_from_the_better_teacher_checked_against_the_readme():
    """One source for the recipe: the image job trains MPNet, then the LSTM as `make train` does (from the better
    teacher there is, with its phrases), overriding nothing, and checks the champion against the README's results
    table before it builds and pushes."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    runs = [str(step.get("run", "")) for step in workflow["jobs"]["image"]["steps"]]
    trains = [run for run in runs if "train" in run and "report" not in run]
    assert [run.strip() for run in trains] == ["make train-mpnet train-lstm-phrases"], trains  # no `-m train`, no ARGS
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^serve: .*\n(.*\n)*?.*\$\(MAKE\) --no-print-directory train-lstm$", makefile, re.M)
    assert re.search(r"^train: .*\n(.*\n)*?.*\$\(MAKE\) --no-print-directory train-lstm-phrases$", makefile, re.M)
    order = [
        next(i for i, run in enumerate(runs) if command in run)
        for command in ("make train-mpnet train-lstm-phrases", "python -m train.report --check tweet-lstm@champion",
                        "make image", "push")
    ]  # fmt: skip
    assert order == sorted(order)


def test_the_workflow_asks_for_the_least_permissions():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        pushes = any("docker push" in str(step.get("run", "")) for step in job["steps"])
        expected = {"contents": "read", "packages": "write"} if pushes else None
        assert job.get("permissions") == expected, name


MANIFEST = ROOT / "deploy" / "kubernetes.yaml"


def resources() -> dict[str, dict]:
    return {document["kind"]: document for document in yaml.safe_load_all(MANIFEST.read_text())}


def test_kubernetes_manifest_validates_against_the_kubernetes_schemas():
    import kubernetes_validate

    for document in yaml.safe_load_all(MANIFEST.read_text()):
        kubernetes_validate.validate(document, "1.33.0", strict=True)  # raises on any unknown or wrong field


def test_checkov_finds_nothing_in_the_kubernetes_manifest():
    checkov = os.environ.get("CHECKOV") or shutil.which("checkov")
    if not checkov:  # `make test` installs it in a venv of its own and sets CHECKOV
        message = "checkov is not installed (make test installs it)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    scan = subprocess.run(
        [checkov, "-f", str(MANIFEST), "--framework", "kubernetes", "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = json.loads(scan.stdout)["summary"]
    assert summary["failed"] == 0 and summary["passed"] > 50, scan.stdout[-3000:]
    # Each skip is justified beside it, in the resource's checkov.io annotations.
    assert summary["skipped"] == MANIFEST.read_text().count("checkov.io/skip")


def test_kubernetes_replicas_share_state_scale_and_are_drained():
    kinds = resources()
    pods = kinds["StatefulSet"]["spec"]["template"]["spec"]
    [container] = pods["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    # Replicas share feedback in PostgreSQL (required), each keeps its prediction log on a claim of its own.
    [database] = [e for e in container["env"] if e["name"] == "TWEETS_FEEDBACK_DB_URL"]
    assert database["valueFrom"]["secretKeyRef"].get("optional") is not True
    [claim] = kinds["StatefulSet"]["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/home/bentoml/state" and mounts["tmp"] == "/tmp"
    # Non-root, read-only, nothing to escalate with; the uid is the image's (deploy/bento.Dockerfile.j2).
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    uid = int(re.search(r"set bento__uid_gid = (\d+)", (ROOT / "deploy" / "bento.Dockerfile.j2").read_text())[1])
    assert pods["securityContext"]["runAsUser"] == uid and pods["securityContext"]["runAsNonRoot"]
    # Scaled on CPU, never below one pod in a disruption, drained before it is killed.
    assert (
        kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == kinds["StatefulSet"]["metadata"]["name"]
    )
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pause + 30 < pods["terminationGracePeriodSeconds"]
