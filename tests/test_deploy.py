"""The CI workflow and the Kubernetes manifest: valid YAML that still does what the README says."""

import yaml

from tweet_sentiment.config import ROOT


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
            'TWEETS_IMAGE="$IMAGE" .venv/bin/python -m pytest -m slow tests/test_image.py',
            "docker push",
        )
    ]
    assert order == sorted(order)  # built, checked by the image test, then pushed (a failed step stops the job)


def test_kubernetes_probes_and_resources():
    claim, deployment, service = yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert container["ports"][0]["containerPort"] == 3000
    # Drained before it is killed: the preStop pause and a 30 s drain fit in the grace period.
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pause + 30 < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert {"TWEETS_FEEDBACK_DB_URL", "TWEETS_FEEDBACK_TOKEN"} <= set(secrets)
    # The state folder (the image's volume) is on the claim: nothing is lost when the pod is replaced.
    [mount] = container["volumeMounts"]
    assert mount["mountPath"] == "/home/bentoml/state"
    [volume] = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    assert (
        claim["kind"] == "PersistentVolumeClaim"
        and volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    )
