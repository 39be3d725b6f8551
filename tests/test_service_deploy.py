"""The Dockerfile and Kubernetes manifests in deploy/, checked by parsing them.

No Docker engine or Kubernetes cluster runs here, so these tests check structure and
consistency with the service's settings, not a running deployment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tiering.service.settings import ENVIRONMENT, ServiceSettings

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to parse the manifests")

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))


def documents() -> list[dict[str, Any]]:
    found = []
    for path in MANIFESTS:
        if path.name == "kustomization.yaml":
            continue
        found.extend(document for document in yaml.safe_load_all(path.read_text()) if document)
    return found


def one(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def test_manifests_parse():
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in documents())

    assert kinds == [
        ("ConfigMap", "tiering-sidecar"),
        ("Deployment", "rag-app"),
        ("Deployment", "tiering-redis"),
        ("Service", "tiering-redis"),
        ("Service", "tiering-sidecar"),
    ]


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())

    listed = set(kustomization["resources"])
    assert listed == {path.name for path in MANIFESTS if path.name != "kustomization.yaml"}


def test_configmap_is_valid_settings():
    data = one("ConfigMap", "tiering-sidecar")["data"]
    known = set(ENVIRONMENT.values())

    unknown = [key for key in data if key not in known and not key.startswith("TIERING_S3_")]
    settings = ServiceSettings.from_env(data)

    assert unknown == []
    assert settings.redis_url.startswith("redis://tiering-redis:")
    assert settings.host == "0.0.0.0"


def test_deployment_runs_app_and_sidecar():
    deployment = one("Deployment", "rag-app")
    pod = deployment["spec"]["template"]
    sidecar = container(deployment, "tiering-sidecar")
    app = container(deployment, "app")
    port = int(one("ConfigMap", "tiering-sidecar")["data"]["TIERING_PORT"])

    assert pod["metadata"]["labels"] == deployment["spec"]["selector"]["matchLabels"]
    assert sidecar["args"] == ["serve"]
    assert sidecar["envFrom"][0]["configMapRef"]["name"] == "tiering-sidecar"
    assert sidecar["ports"][0]["containerPort"] == port
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert any(env["value"] == f"http://127.0.0.1:{port}" for env in app["env"])
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_readiness_timeout_covers_backend_timeout():
    sidecar = container(one("Deployment", "rag-app"), "tiering-sidecar")
    settings = ServiceSettings.from_env(one("ConfigMap", "tiering-sidecar")["data"])

    assert sidecar["readinessProbe"]["timeoutSeconds"] > settings.backend_timeout_s + 1


def test_every_container_has_resources():
    for name in ("rag-app", "tiering-redis"):
        for spec in one("Deployment", name)["spec"]["template"]["spec"]["containers"]:
            resources = spec["resources"]
            assert set(resources) == {"requests", "limits"}, spec["name"]
            assert {"cpu", "memory"} <= set(resources["requests"]), spec["name"]
            assert {"cpu", "memory"} <= set(resources["limits"]), spec["name"]


def test_services_select_their_pods():
    sidecar_service = one("Service", "tiering-sidecar")
    redis_service = one("Service", "tiering-redis")
    app_labels = one("Deployment", "rag-app")["spec"]["template"]["metadata"]["labels"]
    redis_labels = one("Deployment", "tiering-redis")["spec"]["template"]["metadata"]["labels"]

    assert sidecar_service["spec"]["selector"].items() <= app_labels.items()
    assert redis_service["spec"]["selector"].items() <= redis_labels.items()
    assert sidecar_service["spec"]["ports"][0]["targetPort"] == "http-tiering"
    assert redis_service["spec"]["ports"][0]["port"] == 6379


def test_dockerfile_installs_and_serves():
    text = (DEPLOY / "Dockerfile").read_text()

    assert "FROM python:3.11-slim" in text
    assert 'pip install ".[server,qdrant,s3]"' in text
    assert "COPY adapters ./adapters" in text
    assert "USER 10001" in text
    assert 'ENTRYPOINT ["tiering"]' in text
    assert 'CMD ["serve"]' in text
