"""The data-preparation RayJob: only fields KubeRay documents (ray.io/v1 API reference), pod
templates that pass strict Kubernetes validation, and an entrypoint `data prepare` accepts."""

from __future__ import annotations

import dataclasses
import shlex

import pytest

from lmforge.config.data import PrepareConfig
from tests.unit.test_deploy_files import K8S_VERSION, rendered

# https://ray-project.github.io/kuberay/reference/api/ (KubeRay v1.4, ray.io/v1).
RAYJOB_SPEC = {
    "activeDeadlineSeconds", "backoffLimit", "clusterSelector", "deletionStrategy",
    "entrypoint", "entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "jobId",
    "managedBy", "metadata", "rayClusterSpec", "runtimeEnvYAML", "shutdownAfterJobFinishes",
    "submissionMode", "submitterConfig", "submitterPodTemplate", "suspend",
    "ttlSecondsAfterFinished",
}  # fmt: skip
RAYCLUSTER_SPEC = {
    "authOptions", "autoscalerOptions", "enableInTreeAutoscaling", "gcsFaultToleranceOptions",
    "headGroupSpec", "headServiceAnnotations", "managedBy", "rayVersion", "suspend",
    "workerGroupSpecs",
}  # fmt: skip
HEAD_GROUP = {"enableIngress", "headService", "rayStartParams", "serviceType", "template"}
WORKER_GROUP = {
    "groupName", "idleTimeoutSeconds", "maxReplicas", "minReplicas", "numOfHosts",
    "rayStartParams", "replicas", "scaleStrategy", "suspend", "template",
}  # fmt: skip
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}


def _rayjob() -> dict:
    (job,) = [d for d in rendered()["base/jobs"] if d["kind"] == "RayJob"]
    return job


def _unknown(fields: dict, documented: set[str]) -> set[str]:
    return set(fields) - documented


def test_the_rayjob_uses_only_documented_fields() -> None:
    job = _rayjob()
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert not _unknown(spec, RAYJOB_SPEC)
    assert spec["submissionMode"] in SUBMISSION_MODES
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    assert not _unknown(cluster, RAYCLUSTER_SPEC)
    assert not _unknown(cluster["headGroupSpec"], HEAD_GROUP)
    for group in cluster["workerGroupSpecs"]:
        assert not _unknown(group, WORKER_GROUP)
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert all(isinstance(v, str) for v in cluster["headGroupSpec"]["rayStartParams"].values())


def test_the_documented_field_check_can_fail() -> None:
    assert _unknown({"entrypoint": "x", "rayClusterSpecs": {}}, RAYJOB_SPEC) == {"rayClusterSpecs"}


def test_the_ray_pod_templates_pass_strict_validation() -> None:
    import kubernetes_validate

    cluster = _rayjob()["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, **group["template"]}
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    broken = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, **groups[0]["template"]}
    broken["spec"] = {**broken["spec"], "containerz": []}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_entrypoint_is_a_data_prepare_on_ray_with_known_options() -> None:
    words = shlex.split(_rayjob()["spec"]["entrypoint"])
    assert words[:3] == ["lmforge", "data", "prepare"]
    fields = {f.name.replace("_", "-") for f in dataclasses.fields(PrepareConfig)}
    flags = [w[2:] for w in words if w.startswith("--")]
    assert set(flags) <= fields, set(flags) - fields
    assert words[words.index("--engine") + 1] == "ray"
