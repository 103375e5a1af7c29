"""The deployment files: the nginx example is the template rendered with its defaults."""

from __future__ import annotations

import re
from pathlib import Path

from lmforge.deploy.local import render_nginx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ARGS = ("/var/lib/lmforge/nginx", "0.0.0.0:8080", ["127.0.0.1:8001", "127.0.0.1:8002"])
COMPOSE_ARGS = ("/tmp/nginx", "0.0.0.0:8080", ["worker-1:8000", "worker-2:8000"])


def test_the_nginx_examples_are_the_rendered_template() -> None:
    """deploy/nginx/*.conf are the template rendered with the arguments above (regenerate them
    with render_nginx when the template changes)."""
    nginx = ROOT / "deploy" / "nginx"
    assert (nginx / "nginx.conf").read_text(encoding="utf-8") == render_nginx(*EXAMPLE_ARGS)
    assert (nginx / "compose.conf").read_text(encoding="utf-8") == render_nginx(*COMPOSE_ARGS)


def test_the_nginx_config_has_the_essentials() -> None:
    text = render_nginx(*EXAMPLE_ARGS)
    for needed in (
        "least_conn;",
        "keepalive 64;",
        "proxy_buffering off;",
        "max_fails=2 fail_timeout=5s",
        "proxy_next_upstream error;",
        "client_max_body_size 1m;",
        "limit_req zone=lmforge_per_ip",
        "limit_conn lmforge_conn_per_ip",
        "location = /metrics",
        "proxy_read_timeout 600s;",
        '"request_id":"$lmforge_request_id"',
        "server 127.0.0.1:8002 max_fails",
    ):
        assert needed in text, needed
    # POSTs already sent are never replayed on another worker.
    assert "non_idempotent" not in text and "proxy_next_upstream error timeout" not in text


K8S = ROOT / "deploy" / "k8s"
# CRDs of the Prometheus operator and KubeRay: no schema ships with kubernetes-validate (the
# RayJob is checked against KubeRay's documented fields in test_rayjob.py).
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule", "RayJob"}
K8S_VERSION = "1.33.0"


def rendered() -> dict[str, list[dict]]:
    from tests.kustomize import render

    return {
        name: render(path)
        for name, path in {
            "overlays/cpu": K8S / "overlays" / "cpu",
            "overlays/gpu": K8S / "overlays" / "gpu",
            "base/jobs": K8S / "base" / "jobs",
        }.items()
    }


def test_every_rendered_manifest_passes_strict_schema_validation() -> None:
    import kubernetes_validate

    checked = []
    for overlay, docs in rendered().items():
        for doc in docs:
            if doc["kind"] in OPERATOR_KINDS:
                continue
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            checked.append(f"{overlay}: {doc['kind']}/{doc['metadata']['name']}")
    assert len(checked) == 17, checked
    print("\n".join(f"valid (strict, {K8S_VERSION}): {line}" for line in checked))


def test_an_invalid_manifest_is_caught() -> None:
    """The validation above must be able to fail."""
    import kubernetes_validate
    import pytest

    deployment = next(d for d in rendered()["overlays/cpu"] if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_manifests_agree_with_each_other_and_with_the_api() -> None:
    from lmforge.serve.http.app import create_app

    routes = {route.path for route in create_app(None).routes}
    for overlay in ("overlays/cpu", "overlays/gpu"):
        docs = {doc["kind"]: doc for doc in rendered()[overlay]}
        deployment, service = docs["Deployment"], docs["Service"]
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        selectors = [
            deployment["spec"]["selector"]["matchLabels"],
            service["spec"]["selector"],
            docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
            docs["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"],
        ]
        assert all(selector.items() <= labels.items() for selector in selectors)
        (container,) = pod["spec"]["containers"]
        port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert service["spec"]["ports"][0]["targetPort"] in port_names
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            check = container[probe]["httpGet"]
            assert check["path"] in routes and check["port"] in port_names
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        assert security["capabilities"]["drop"] == ["ALL"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"]
        # The grace period outlasts preStop plus the server's drain.
        drain = 30
        grace = pod["spec"]["terminationGracePeriodSeconds"]
        assert grace > container["lifecycle"]["preStop"]["sleep"]["seconds"] + drain
        hpa = docs["HorizontalPodAutoscaler"]
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        metrics = {m["type"] for m in hpa["spec"]["metrics"]}
        assert metrics == {"Resource", "Pods"}
        assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
        ingress_backend = docs["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]
        assert ingress_backend["service"]["name"] == service["metadata"]["name"]
    gpu = {doc["kind"]: doc for doc in rendered()["overlays/gpu"]}["Deployment"]
    gpu_container = gpu["spec"]["template"]["spec"]["containers"][0]
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu_container["image"].endswith("-cuda")


def test_the_jobs_prepare_data_on_ray_and_train_with_torchrun() -> None:
    docs = {doc["metadata"]["name"]: doc for doc in rendered()["base/jobs"]}
    prepare = docs["lmforge-data-prepare"]
    assert prepare["kind"] == "RayJob" and "--engine ray" in prepare["spec"]["entrypoint"]
    assert "--output /data/dataset" in prepare["spec"]["entrypoint"]
    train = docs["lmforge-train"]["spec"]["template"]["spec"]["containers"][0]
    assert train["command"][0] == "torchrun"


def test_prometheus_rules_match_the_alert_file() -> None:
    import yaml

    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    rule = yaml.safe_load((K8S / "base" / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == alerts
    names = {r["alert"] for g in alerts["groups"] for r in g["rules"] if "alert" in r}
    assert names == {
        "LmforgeHighErrorRate",
        "LmforgeQueueGrowing",
        "LmforgeSlowFirstToken",
        "LmforgeNoReadyReplicas",
        "LmforgeInputDrift",
    }
    records = {r["record"] for g in alerts["groups"] for r in g["rules"] if "record" in r}
    assert records == {"lmforge:prompt_nll_mean:1h"}


def test_the_dashboard_and_alerts_use_only_metrics_the_server_exports() -> None:
    import json
    import re

    from lmforge.serve.drift import drift_for
    from lmforge.serve.metrics import Metrics

    metrics = Metrics()
    drift_for(metrics)  # the drift metrics join the registry with the first sampled prompt
    families = {metric.name for metric in metrics.registry.collect()}
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "lmforge.json").read_text())
    text = json.dumps(dashboard) + (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    used = set(re.findall(r"\blmforge_[a-z_]+", text))
    used -= {"lmforge_workers"}
    suffix = re.compile(r"_(total|bucket|sum|count|info)$")
    missing = {name for name in used if suffix.sub("", name) not in families}
    assert not missing, missing


def test_the_container_files_have_the_essentials() -> None:
    import yaml

    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    assert len(stages) >= 2
    final = stages[-1]
    assert "USER 10001" in final and "build-essential" not in final
    assert "HEALTHCHECK" in final and "/healthz" in final
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dockerfile
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"mlflow", "worker-1", "worker-2", "nginx", "prometheus", "grafana"} <= set(services)
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["worker-1:8000", "worker-2:8000"]


def test_a_missing_nginx_is_named_with_the_package_to_install(monkeypatch, tmp_path) -> None:
    import pytest

    from lmforge.deploy import local
    from lmforge.errors import LmforgeError

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(local, "NGINX_PATHS", (str(tmp_path / "nginx"),))
    with pytest.raises(LmforgeError, match="nginx is not installed") as caught:
        local.find_nginx()
    assert "apt-get install nginx" in caught.value.hint


def ingress_matches(rule: dict, path: str) -> bool:
    """Kubernetes Ingress path matching: Exact is equality; Prefix matches whole path elements
    (`/v1` matches `/v1` and `/v1/models`, not `/v1x`)."""
    if rule["pathType"] == "Exact":
        return path == rule["path"]
    prefix = rule["path"].rstrip("/")
    return path == prefix or path.startswith(prefix + "/") or prefix == ""


def test_the_ingress_hides_metrics_and_admin_by_its_path_rules_alone() -> None:
    """No snippet annotation (ingress-nginx refuses them by default since 1.9): the rules list
    the public routes, so /metrics, /admin/... and anything unlisted get the controller's 404."""
    from lmforge.serve.http.app import create_app

    routes = {route.path for route in create_app(None).routes}
    hidden = {"/metrics"} | {r for r in routes if r.startswith("/admin/")}
    assert "/admin/reload" in hidden
    for overlay in ("overlays/cpu", "overlays/gpu"):
        (ingress,) = [doc for doc in rendered()[overlay] if doc["kind"] == "Ingress"]
        assert not [a for a in ingress["metadata"]["annotations"] if "snippet" in a]
        paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
        assert {p["backend"]["service"]["name"] for p in paths} == {"lmforge"}

        def exposed(path: str, paths: list[dict] = paths) -> bool:
            return any(ingress_matches(p, path) for p in paths)

        assert [r for r in sorted(hidden) if exposed(r)] == []
        assert [r for r in sorted(routes - hidden) if not exposed(r)] == []
        for probe in ("/admin/", "/admin/anything", "/metrics/", "/metricsx", "/internal"):
            assert not exposed(probe), probe


def test_no_container_lets_telemetry_leave() -> None:
    """lmforge switches telemetry off itself; every container env says so too, for any other
    process run in the image."""
    import yaml

    from lmforge import TELEMETRY_OFF

    final = re.split(r"^FROM ", (ROOT / "deploy" / "Dockerfile").read_text(), flags=re.M)[-1]
    for name, value in TELEMETRY_OFF.items():
        assert re.search(rf"^\s+(ENV )?{name}={value}\b", final, flags=re.M), name
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    for service in ("mlflow", "worker-1", "worker-2"):
        env = compose["services"][service]["environment"]
        assert TELEMETRY_OFF.items() <= env.items(), service
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["GF_ANALYTICS_REPORTING_ENABLED"] == "false"
    pods = [
        (overlay, doc["spec"]["template"]["spec"])
        for overlay, docs in rendered().items()
        for doc in docs
        if "template" in doc.get("spec", {})
    ]
    for doc in rendered()["base/jobs"]:
        if cluster := doc["spec"].get("rayClusterSpec"):
            groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
            pods += [("base/jobs", group["template"]["spec"]) for group in groups]
    containers = [
        (overlay, container)
        for overlay, pod in pods
        for container in pod["containers"] + pod.get("initContainers", [])
    ]
    assert len(containers) == 5  # lmforge on cpu and gpu; the Ray head and workers; train
    for overlay, container in containers:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert TELEMETRY_OFF.items() <= env.items(), f"{overlay}: {container['name']}"
