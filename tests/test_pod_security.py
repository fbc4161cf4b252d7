"""Pod Security "restricted": every pod cryptoetl creates or configures would be admitted.

k8s/namespace.yaml enforces the profile in both namespaces, so a pod that breaks it is refused at
creation: a task would fail when its pod is created, a chart component would never start. Checked
offline with tests/pod_security.py (the profile's rules, written out) on:

- every task pod, rendered as KubernetesPodOperator would create it (the local settings in
  Kubernetes mode; the project image and the sentiment image), also validated strictly;
- the init Job's pod template (k8s/init-db-job.yaml);
- each Airflow component's pod as helm-values.yaml configures it: its pod context, its main
  container and the sidecars and init containers the chart adds (git-sync, log groomer,
  wait-for-migrations), and statsd.

The checker is also shown pods that break each rule, so a checker that passes everything fails.
"""

from __future__ import annotations

import copy
from functools import cache

import kubernetes_validate
import pytest
import yaml
from conftest import REPO
from helpers import render_pod, utc
from pod_security import restricted_violations

from cryptoetl.airflow.operators import RUN_AS_GROUP, RUN_AS_USER, TMP_DIR, WRITABLE_ENV, pod_security_kwargs
from cryptoetl.config import Settings
from cryptoetl.intervals import Interval

K8S_VERSION = kubernetes_validate.latest_version()
DAY = Interval(utc(2026, 1, 1), utc(2026, 1, 2))
PROFILE = "restricted"
# Chart components whose pods run the Airflow image, with the sidecars/init containers the chart adds.
AIRFLOW_COMPONENTS = {
    "scheduler": ("logGroomerSidecar", "waitForMigrations", "gitSync"),
    "dagProcessor": ("logGroomerSidecar", "waitForMigrations", "gitSync"),
    "triggerer": ("logGroomerSidecar", "waitForMigrations", "gitSync"),
    "apiServer": ("waitForMigrations",),
    "migrateDatabaseJob": (),
}


@cache
def _yaml_docs(name: str) -> tuple[dict, ...]:
    return tuple(d for d in yaml.safe_load_all((REPO / "k8s" / name).read_text()) if d)


def _init_job_pod() -> dict:
    (job,) = [d for d in _yaml_docs("init-db-job.yaml") if d["kind"] == "Job"]
    return job["spec"]["template"]["spec"]


@cache
def _helm_values() -> dict:
    return yaml.safe_load((REPO / "helm-values.yaml").read_text())


def _component_pod(name: str, values: dict | None = None) -> dict:
    """The security-relevant part of the pod the chart renders for ``name`` from helm-values.yaml."""
    values = values or _helm_values()
    component = values[name]
    contexts = component.get("securityContexts") or {}
    pod = {"securityContext": contexts.get("pod") or (values.get("securityContexts") or {}).get("pod") or {},
           "containers": [{"name": name, "securityContext": contexts.get("container") or {}}],
           "initContainers": []}
    for extra in AIRFLOW_COMPONENTS.get(name, ()):
        source = values["dags"]["gitSync"] if extra == "gitSync" else component.get(extra, {})
        container = {"name": extra, "securityContext": (source.get("securityContexts") or {}).get("container") or {}}
        pod["initContainers" if extra == "waitForMigrations" else "containers"].append(container)
        if extra == "gitSync":  # git-sync also runs once as an init container
            pod["initContainers"].append({**container, "name": "gitSync-init"})
    return pod


# --------------------------------------------------------------- the checker itself


def _good_pod() -> dict:
    return {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "x"}}],
    }


def _container(pod: dict) -> dict:
    return pod["containers"][0]["securityContext"]


BREAKS = {
    "no-pod-context": (lambda p: p.pop("securityContext"), "runAsNonRoot must be true"),
    "no-seccomp": (lambda p: p["securityContext"].pop("seccompProfile"), "seccompProfile must be"),
    "seccomp-unconfined": (lambda p: p["securityContext"].update(seccompProfile={"type": "Unconfined"}),
                           "seccompProfile Unconfined"),
    "run-as-root": (lambda p: p["securityContext"].update(runAsUser=0), "runAsUser is 0"),
    "container-allows-root": (lambda p: _container(p).update(runAsNonRoot=False), "runAsNonRoot must be true"),
    "privilege-escalation": (lambda p: _container(p).update(allowPrivilegeEscalation=True),
                             "allowPrivilegeEscalation must be false"),
    "escalation-unset": (lambda p: _container(p).pop("allowPrivilegeEscalation"),
                         "allowPrivilegeEscalation must be false"),
    "capabilities-kept": (lambda p: _container(p).pop("capabilities"), "capabilities must drop ALL"),
    "capability-added": (lambda p: _container(p)["capabilities"].update(add=["SYS_ADMIN"]), "SYS_ADMIN added"),
    "privileged": (lambda p: _container(p).update(privileged=True), "privileged"),
    "host-network": (lambda p: p.update(hostNetwork=True), "hostNetwork"),
    "host-pid": (lambda p: p.update(hostPID=True), "hostPID"),
    "host-path": (lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "type hostPath"),
    "nfs-volume": (lambda p: p["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}), "type nfs"),
    "host-port": (lambda p: p["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]), "hostPort"),
    "unsafe-sysctl": (lambda p: p["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
                      "kernel.msgmax"),
    "init-container-as-is": (lambda p: p.update(initContainers=[{"name": "i"}]), "initContainers[i]"),
}


def test_checker_passes_a_restricted_pod():
    assert restricted_violations(_good_pod()) == []


@pytest.mark.parametrize("name", BREAKS)
def test_checker_catches_each_rule(name):
    mutate, expected = BREAKS[name]
    pod = _good_pod()
    mutate(pod)
    problems = restricted_violations(pod)
    assert any(expected in p for p in problems), problems


def test_checker_fails_a_pod_without_security_settings(k8s_dags):
    """What the task pods looked like before: `securityContext: {}` and none on the container."""
    pod = render_pod(k8s_dags["prices_coingecko"].tasks[0], DAY)["spec"]
    pod["securityContext"] = {}
    del pod["containers"][0]["securityContext"]
    problems = " | ".join(restricted_violations(pod))
    for rule in ("runAsNonRoot", "allowPrivilegeEscalation", "drop ALL", "seccompProfile"):
        assert rule in problems


# --------------------------------------------------------------- what cryptoetl runs


def test_namespaces_enforce_restricted():
    settings = Settings()
    namespaces = {d["metadata"]["name"]: d["metadata"]["labels"] for d in _yaml_docs("namespace.yaml")}
    for name in (settings.namespace, "airflow"):
        assert namespaces[name]["pod-security.kubernetes.io/enforce"] == PROFILE, name


def test_every_task_pod_is_restricted_and_valid(k8s_dags):
    tasks = [t for dag in k8s_dags.values() for t in dag.tasks]
    images = set()
    for task in tasks:
        pod = render_pod(task, DAY)
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        assert restricted_violations(pod["spec"]) == [], task.task_id
        images.add(pod["spec"]["containers"][0]["image"])
    assert len(images) == 2, f"both images (project and sentiment) were rendered: {images}"


def test_task_pods_run_as_the_image_user_on_a_read_only_root(k8s_dags):
    for dag in k8s_dags.values():
        spec = render_pod(dag.tasks[0], DAY)["spec"]
        (container,) = spec["containers"]
        assert spec["securityContext"]["runAsUser"] == RUN_AS_USER and spec["securityContext"]["runAsGroup"] == 0
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        # the one writable path: an emptyDir on /tmp, and the variables that point there
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert set(mounts) == {TMP_DIR} and "emptyDir" in volumes[mounts[TMP_DIR]]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert {k: env.get(k) for k in WRITABLE_ENV} == WRITABLE_ENV
        assert all(v.startswith(TMP_DIR) for v in WRITABLE_ENV.values())


def test_init_job_is_restricted_like_the_task_pods():
    from kubernetes.client import ApiClient

    pod = _init_job_pod()
    assert restricted_violations(pod) == []
    want = ApiClient().sanitize_for_serialization(pod_security_kwargs())
    (container,) = pod["containers"]
    assert pod["securityContext"] == want["security_context"]
    assert container["securityContext"] == want["container_security_context"]
    assert pod["volumes"] == want["volumes"] and container["volumeMounts"] == want["volume_mounts"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (RUN_AS_USER, RUN_AS_GROUP)


@pytest.mark.parametrize("component", [*AIRFLOW_COMPONENTS, "statsd"])
def test_airflow_components_are_restricted(component):
    pod = _component_pod(component)
    assert restricted_violations(pod) == [], component
    if component != "statsd":  # the Airflow image's user, as in the task pods
        assert pod["securityContext"]["runAsUser"] == RUN_AS_USER


def test_component_check_sees_the_sidecars():
    """A sidecar without a context fails its component, so the sidecars really are checked."""
    values = copy.deepcopy(_helm_values())
    del values["dags"]["gitSync"]["securityContexts"]
    assert any("gitSync" in p for p in restricted_violations(_component_pod("scheduler", values)))
