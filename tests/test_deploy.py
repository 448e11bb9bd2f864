"""The CI workflow and the Kubernetes manifest: valid YAML that still does what the README says."""

import yaml

from tweet_sentiment.config import ROOT


def test_workflow_tests_builds_and_containerizes():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    assert {"push", "pull_request"} <= set(workflow[True])  # YAML 1.1 reads the key `on` as True
    test_steps = " ".join(str(step.get("run", "")) for step in workflow["jobs"]["test"]["steps"])
    assert "bash .ci/run" in test_steps
    bento = workflow["jobs"]["bento"]
    assert bento["needs"] == "test"
    bento_steps = " ".join(str(step.get("run", "")) for step in bento["steps"])
    for command in ("bentoml build", "bentoml containerize", "docker run", "/predict"):
        assert command in bento_steps


def test_kubernetes_probes_and_resources():
    deployment, service = yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert container["ports"][0]["containerPort"] == 3000
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert {"TWEETS_FEEDBACK_DB_URL", "TWEETS_FEEDBACK_TOKEN"} <= set(secrets)
