"""Deployment artefacts, checked offline: k8s/*.yaml, helm-values.yaml, Dockerfile.

- Kubernetes manifests validate in strict mode (unknown fields fail) against the OpenAPI
  schemas bundled with ``kubernetes-validate``: the newest it ships and an older, still
  common minor version.
- RBAC is least privilege for KubernetesPodOperator; the task pods' account has none.
- Secret templates carry every key the pods expect, and only placeholders.
- helm-values.yaml validates against tests/schemas/airflow-chart-values.subset.schema.json
  (chart keys checked against the official chart schema; see tests/schemas/README.md) and
  agrees with the image, the manifests and the code's settings; the chart makes no default user,
  its keys come from existing Secrets, and the auth manager is FAB with its provider pinned.
- The Dockerfile pins its base image to the Airflow and Python that requirements.txt pins.

Each validator is also shown a broken document, so a validator that accepts everything
cannot make these tests pass.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from cryptoetl.airflow.operators import secret_keys
from cryptoetl.config import Settings

REPO = Path(__file__).resolve().parents[1]
K8S_DIR = REPO / "k8s"
HELM_VALUES = REPO / "helm-values.yaml"
DOCKERFILE = REPO / "Dockerfile"
CHART_SUBSET_SCHEMA = REPO / "tests" / "schemas" / "airflow-chart-values.subset.schema.json"

K8S_LATEST = kubernetes_validate.latest_version()
K8S_OLDER = "1.30.0"  # still common on managed clusters; bundled by kubernetes-validate
K8S_VERSIONS = [K8S_LATEST, K8S_OLDER]

AIRFLOW_NAMESPACE = "airflow"  # helm -n airflow (k8s/README.md)
PLACEHOLDER = "REPLACE_ME"
# What KubernetesPodOperator calls in synchronous mode (see the comment in k8s/rbac.yaml).
KPO_NEEDS = {
    "pods": {"create", "get", "list", "watch", "patch", "delete"},
    "pods/log": {"get"},
    "events": {"list"},
}
TAINT = {"key": "dedicated", "value": "data-collection", "effect": "NoSchedule"}


# ---------------------------------------------------------------- loading


def _manifest_files() -> list[Path]:
    return sorted(K8S_DIR.glob("*.yaml"))


@cache
def _documents() -> tuple[tuple[str, dict], ...]:
    docs = []
    for path in _manifest_files():
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                docs.append((f"{path.name}#{i}", doc))
    return tuple(docs)


def _docs(kind: str, name: str | None = None) -> list[dict]:
    found = [d for _, d in _documents() if d.get("kind") == kind]
    if name is not None:
        found = [d for d in found if d["metadata"]["name"] == name]
    return found


def _one(kind: str, name: str) -> dict:
    found = _docs(kind, name)
    assert len(found) == 1, f"expected exactly one {kind} {name!r} in k8s/*.yaml, found {len(found)}"
    return found[0]


@cache
def _helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


def _helm_env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in _helm_values().get("env", [])}


def _airflow_image() -> str:
    image = _helm_values()["images"]["airflow"]
    return f"{image['repository']}:{image['tag']}"


def _k8s_validate(doc: dict, version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


# ---------------------------------------------------------------- Kubernetes manifests


def test_manifest_directory_is_complete():
    names = {p.name for p in _manifest_files()}
    assert {"namespace.yaml", "rbac.yaml", "secret.template.yaml", "network-policy.yaml",
            "resource-quota.yaml"} <= names
    assert (K8S_DIR / "README.md").is_file()


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: p.name)
def test_manifests_validate_strictly(path, version):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path.name} holds no document"
    for doc in docs:
        try:
            _k8s_validate(doc, version)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc.get('kind')}/{doc['metadata'].get('name')}: {exc.message} "
                        f"at {'/'.join(map(str, exc.path))} (Kubernetes {version})")


def test_strict_validation_rejects_broken_manifests():
    """The validator is not a no-op: an unknown field and wrong types fail."""
    sa = copy.deepcopy(_one("ServiceAccount", "cryptoetl-pods"))
    sa["automountServiceAccountTokn"] = False  # typo: unknown field, strict mode only
    job = copy.deepcopy(_one("Job", "cryptoetl-init-db"))
    job["spec"]["template"]["spec"]["tolerations"][0]["effect"] = 42  # wrong type
    secret = copy.deepcopy(_one("Secret", "data-collection-secrets"))
    secret["stringData"] = ["not", "a", "map"]
    for broken in (sa, job, secret):
        with pytest.raises(kubernetes_validate.ValidationError):
            _k8s_validate(broken, K8S_LATEST)


def test_namespaces_exist():
    settings = Settings()
    assert {d["metadata"]["name"] for d in _docs("Namespace")} >= {settings.namespace, AIRFLOW_NAMESPACE}
    for _, doc in _documents():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace"), f"{doc['kind']}/{doc['metadata']['name']} sets no namespace"


def test_task_pod_service_account_has_no_api_access():
    settings = Settings()
    sa = _one("ServiceAccount", settings.service_account)
    assert sa["metadata"]["namespace"] == settings.namespace
    assert sa["automountServiceAccountToken"] is False
    for binding in _docs("RoleBinding") + _docs("ClusterRoleBinding"):
        for subject in binding.get("subjects", []):
            assert subject["name"] != settings.service_account, "the task pods' account must hold no Role"


def _rules_by_resource(role: dict) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for rule in role["rules"]:
        assert rule.get("apiGroups") == [""], "only the core API group is needed"
        for resource in rule["resources"]:
            granted.setdefault(resource, set()).update(rule["verbs"])
    return granted


def test_pod_launcher_role_is_least_privilege_for_kpo():
    settings = Settings()
    assert not _docs("ClusterRole") and not _docs("ClusterRoleBinding"), "namespaced RBAC only"
    role = _one("Role", "cryptoetl-pod-launcher")
    assert role["metadata"]["namespace"] == settings.namespace
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), f"wildcard in {field}: {rule}"
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule
    granted = _rules_by_resource(role)
    for resource, verbs in KPO_NEEDS.items():
        assert verbs <= granted.get(resource, set()), f"{resource}: missing {verbs - granted.get(resource, set())}"
    # Everything granted is justified in k8s/rbac.yaml: pods, their logs, their events.
    assert set(granted) == {"pods", "pods/log", "events"}
    assert granted["pods/log"] == {"get"}
    assert granted["events"] <= {"get", "list", "watch"}
    # No exec (XCom sidecar only; do_xcom_push=False), no secrets, no escalation verbs.
    assert "pods/exec" not in granted and "secrets" not in granted
    assert not {"escalate", "bind", "impersonate"} & set().union(*granted.values())


def test_pod_launcher_binding_targets_the_scheduler_account():
    settings = Settings()
    binding = _one("RoleBinding", "cryptoetl-pod-launcher")
    assert binding["metadata"]["namespace"] == settings.namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cryptoetl-pod-launcher"}
    scheduler_sa = _helm_values()["scheduler"]["serviceAccount"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": scheduler_sa, "namespace": AIRFLOW_NAMESPACE}
    ], "with LocalExecutor the operator runs in the scheduler pod: bind exactly its account"


def _secret_values(secret: dict) -> dict[str, str]:
    assert "data" not in secret, "templates use stringData only: base64 would hide a real value"
    assert secret["type"] == "Opaque"
    return secret["stringData"]


def _looks_like_placeholder(value: str) -> bool:
    """A placeholder contains REPLACE_ME; with those removed, nothing key- or password-like is left."""
    if PLACEHOLDER not in value:
        return False
    rest = value.replace(PLACEHOLDER, "")
    if re.search(r"[A-Za-z0-9_\-]{16,}", rest):  # API keys, tokens, long passwords
        return False
    if "://" in value:
        url = urlsplit(value)
        return url.password in (None, PLACEHOLDER) and url.username in (None, PLACEHOLDER)
    return True


def test_placeholder_check_catches_real_looking_values():
    assert _looks_like_placeholder("mysql://REPLACE_ME:REPLACE_ME@REPLACE_ME:3306/crypto")
    assert _looks_like_placeholder("REPLACE_ME")
    assert not _looks_like_placeholder("CG-x8Rk2pLq9ZtYw3Vb7NmA")
    assert not _looks_like_placeholder("REPLACE_ME CG-x8Rk2pLq9ZtYw3Vb7NmA")
    assert not _looks_like_placeholder("mysql://etl:hunter2@REPLACE_ME:3306/crypto")
    assert not _looks_like_placeholder("")


def test_data_collection_secret_template_has_every_key_and_only_placeholders():
    settings = Settings()
    secret = _one("Secret", settings.secret_name)
    assert secret["metadata"]["namespace"] == settings.namespace
    values = _secret_values(secret)
    # The keys are derived from the source specs (operators.secret_keys); the template must list exactly them.
    assert set(values) == set(secret_keys()), (
        f"k8s/secret.template.yaml keys differ from the registered sources: missing "
        f"{sorted(set(secret_keys()) - set(values))}, unknown {sorted(set(values) - set(secret_keys()))}")
    for key, value in values.items():
        assert isinstance(value, str) and _looks_like_placeholder(value), f"{key} does not look like a placeholder"
    warehouse = urlsplit(values["CRYPTOETL_WAREHOUSE_URL"])
    assert warehouse.scheme == "mysql+mysqldb" and "charset=utf8mb4" in warehouse.query
    assert urlsplit(values["AIRFLOW_CONN_CRYPTOETL_WAREHOUSE"]).scheme == "mysql"


def test_every_secret_in_k8s_is_a_placeholder_template():
    for secret in _docs("Secret"):
        for key, value in _secret_values(secret).items():
            name = secret["metadata"]["name"]
            assert _looks_like_placeholder(value), f"{name}.{key} does not look like a placeholder"


def test_init_db_job_runs_like_an_operator_pod():
    """The one-off Job uses the same pod conventions as pod_kwargs() in the operator factory."""
    settings = Settings()
    job = _one("Job", "cryptoetl-init-db")
    assert job["metadata"]["namespace"] == settings.namespace
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == settings.service_account
    assert pod["nodeSelector"] == dict(settings.node_selector)
    assert {**TAINT, "operator": "Equal"} in pod["tolerations"]
    (container,) = pod["containers"]
    assert container["image"] == _helm_env()["CRYPTOETL_IMAGE"]
    assert container["command"] == ["python", "-m", "cryptoetl"] and container["args"] == ["migrate"]
    assert container["envFrom"] == [{"secretRef": {"name": settings.secret_name}}]
    assert "env" not in container, "secrets come from the Secret, never literals"


# ---------------------------------------------------------------- helm-values.yaml


@cache
def _chart_validator() -> jsonschema.protocols.Validator:
    k8s_defs_path = (Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
                     / f"v{K8S_LATEST}-local-strict" / "_definitions.json")
    k8s_defs = Resource.from_contents(json.loads(k8s_defs_path.read_text()))
    schema = json.loads(CHART_SUBSET_SCHEMA.read_text())
    registry = Registry().with_resource(k8s_defs.id(), k8s_defs)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=registry)


def _chart_errors(values: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in _chart_validator().iter_errors(values)]


def test_helm_values_validate_against_chart_schema_subset():
    assert _chart_errors(_helm_values()) == []


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda v: v.update(webserver={"replicas": 1}), id="airflow2-webserver-key"),
        pytest.param(lambda v: v.update(schedular=v.pop("scheduler")), id="typo-top-level"),
        pytest.param(lambda v: v["scheduler"]["serviceAccount"].update(nmae="x"), id="typo-nested"),
        pytest.param(lambda v: v["scheduler"].update(tolerations=[{**TAINT, "operater": "Equal"}]),
                     id="k8s-toleration-unknown-field"),
        pytest.param(lambda v: v["scheduler"].update(resources={"request": {"cpu": "1"}}),
                     id="k8s-resources-unknown-field"),
        pytest.param(lambda v: v.update(executor=["LocalExecutor"]), id="executor-wrong-type"),
        pytest.param(lambda v: v["env"].append({"name": "X", "valueFrom": {}}), id="global-env-value-only"),
        pytest.param(lambda v: v["migrateDatabaseJob"].update(args="airflow db migrate"), id="args-not-a-list"),
        pytest.param(lambda v: v["scheduler"]["securityContexts"]["pod"].update(runAsNonroot=True),
                     id="k8s-pod-security-context-unknown-field"),
        pytest.param(lambda v: v["dags"]["gitSync"]["securityContexts"].update(pod={}), id="git-sync-has-no-pod"),
        pytest.param(lambda v: v["apiServer"]["defaultUser"].update(enable=False), id="default-user-typo"),
        pytest.param(lambda v: v.update(jwtSecretNmae="x"), id="secret-name-typo"),
    ],
)
def test_chart_schema_rejects_broken_values(mutate):
    values = copy.deepcopy(_helm_values())
    mutate(values)
    assert _chart_errors(values), "the broken values were accepted"


def test_helm_values_use_airflow3_keys_only():
    values = _helm_values()
    assert "webserver" not in values, "Airflow 3 charts use apiServer, not webserver"
    assert {"apiServer", "dagProcessor", "scheduler", "triggerer"} <= set(values)
    assert values["dagProcessor"]["enabled"] is True
    assert values["airflowVersion"] == _pinned_airflow_version()


def test_helm_values_executor_launches_light_processes():
    values = _helm_values()
    assert values["executor"] in {"LocalExecutor", "CeleryExecutor"}, (
        "tasks are KubernetesPodOperators: KubernetesExecutor would start a pod to start a pod")
    assert values["allowPodLaunching"] is False, "pod rights come from k8s/rbac.yaml, in namespace cryptoetl"
    assert values["config"]["operators"]["default_deferrable"] == "False", (
        "k8s/rbac.yaml binds only the scheduler's account, not the triggerer's")


def test_helm_values_images_are_pinned_and_shared_with_the_pods():
    values = _helm_values()
    image = values["images"]["airflow"]
    assert image["repository"] and image["tag"]
    assert image["tag"] != "latest", "a backfill must run the same code as the scheduled run did"
    assert values["images"]["useDefaultImageForMigration"] is False, "the migration job imports the pools"
    env = _helm_env()
    assert env["CRYPTOETL_MODE"] == "kubernetes"
    assert env["CRYPTOETL_IMAGE"] == _airflow_image(), "scheduler and task pods must run the same build"
    Settings.from_env({"CRYPTOETL_MODE": env["CRYPTOETL_MODE"], "CRYPTOETL_IMAGE": env["CRYPTOETL_IMAGE"]})
    assert Settings().image == _airflow_image(), "config.py's default image tag drifted from helm-values.yaml"


# The chart's own keys: (values key naming an existing Secret, the key the chart reads from it).
# Unset, the chart generates them: the API and JWT secrets anew on every `helm upgrade`.
CHART_KEY_SECRETS = {"fernetKeySecretName": "fernet-key", "apiSecretKeySecretName": "api-secret-key",
                     "jwtSecretName": "jwt-secret"}
# Literal values the chart would otherwise put in a Secret it renders itself (and in helm history).
CHART_LITERAL_SECRETS = ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey")


def test_helm_values_secrets_and_database_come_from_secrets():
    values = _helm_values()
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    conn_env = {s["envName"]: s for s in values["secret"]}
    assert "AIRFLOW_CONN_CRYPTOETL_WAREHOUSE" in conn_env
    assert "AIRFLOW_CONN_CRYPTOETL_WAREHOUSE" not in _helm_env(), "connections never as literal env"
    assert not set(CHART_LITERAL_SECRETS) & set(values), "keys come from existing Secrets, never from values"
    assert "metadataConnection" not in values["data"]
    # Every Secret the chart is told to read has a template in the release namespace with that key.
    needed = {(values["data"]["metadataSecretName"], "connection")}
    needed |= {(s["secretName"], s.get("secretKey", s["envName"])) for s in values["secret"]}
    needed |= {(values[name], key) for name, key in CHART_KEY_SECRETS.items()}
    for name, key in needed:
        secret = _one("Secret", name)
        assert secret["metadata"]["namespace"] == AIRFLOW_NAMESPACE, f"{name} must live in the release namespace"
        assert key in secret["stringData"], f"{name} has no key {key}"


def test_helm_values_create_no_default_user():
    """The chart's create-user job would make admin/admin; the first admin is created by hand."""
    values = _helm_values()
    assert values["apiServer"]["defaultUser"]["enabled"] is False
    assert "createUserJob" not in values and "webserver" not in values


FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def test_helm_values_use_fab_and_the_image_has_its_provider():
    assert _helm_values()["config"]["core"]["auth_manager"] == FAB_AUTH_MANAGER
    provider = re.search(r"^apache-airflow-providers-fab==(\S+)$", (REPO / "requirements.txt").read_text(), re.M)
    assert provider, "the FAB auth manager needs apache-airflow-providers-fab pinned in requirements.txt (the image's)"
    assert re.search(r"^flask-appbuilder==\S+$", (REPO / "requirements.txt").read_text(), re.M | re.I)


def test_helm_values_dags_from_git_sync():
    git_sync = _helm_values()["dags"]["gitSync"]
    assert git_sync["enabled"] is True and git_sync["subPath"] == "dags"
    assert git_sync["repo"].startswith(("https://", "git@", "ssh://"))
    tag = _helm_values()["images"]["airflow"]["tag"]
    assert git_sync["ref"] in {tag, f"v{tag}"}, "DAGs must come from the release the image was built from"


def test_helm_values_import_pools_from_the_image():
    args = _helm_values()["migrateDatabaseJob"]["args"]
    command = " ".join(args)
    assert "airflow db migrate" in command, "the override must keep the migration"
    match = re.search(r"airflow pools import (\S+)", command)
    assert match, "pools are imported by the migration job"
    in_image = match.group(1)
    assert in_image == "/opt/airflow/include/pools.json"
    assert re.search(r"^COPY\s.*\binclude/\s+/opt/airflow/include/\s*$", DOCKERFILE.read_text(), re.M)
    pools = json.loads((REPO / "include" / "pools.json").read_text())
    assert pools and all({"slots", "description"} <= set(p) for p in pools.values())


def test_airflow_components_stay_off_the_data_collection_node():
    """Only task pods tolerate the taint; Airflow does not compete for the collection node."""
    def walk(node):
        if isinstance(node, dict):
            yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for node in walk(_helm_values()):
        assert node.get("key") != TAINT["key"] or node.get("value") != TAINT["value"], f"tolerates the taint: {node}"
        assert "node-type" not in (node.get("nodeSelector") or {}), f"selects the data-collection node: {node}"


# ---------------------------------------------------------------- Dockerfile


def _pinned_airflow_version() -> str:
    match = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.M)
    assert match, "requirements.txt must pin apache-airflow"
    return match.group(1)


def _global_args(text: str) -> dict[str, str]:
    """The ARGs declared before the first FROM, with their defaults: the only ones FROM can use."""
    head = re.split(r"^FROM\s", text, maxsplit=1, flags=re.M | re.I)[0]
    return {name: value.strip("\"'") for name, value in re.findall(r"^ARG\s+(\w+)=(\S+)\s*$", head, re.M | re.I)}


def _resolve_args(image: str, args: dict[str, str]) -> str:
    """``$NAME``/``${NAME}`` replaced by the ARG's default; a variable without one stays as it is."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), image)


def _from_stages(text: str | None = None) -> list[tuple[str, str | None]]:
    """(image, stage name) of every FROM, the global ARGs' defaults substituted into the image."""
    text = DOCKERFILE.read_text() if text is None else text
    args = _global_args(text)
    found = re.findall(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    assert found, "Dockerfile has no FROM"
    return [(_resolve_args(image, args), stage or None) for image, stage in found]


def _from_images() -> list[str]:
    return [image for image, _ in _from_stages()]


def _is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name_tag = image.rsplit("/", 1)[-1]
    return ":" in name_tag and not name_tag.endswith(":latest") and "$" not in image


def test_pin_check_rejects_floating_images():
    assert _is_pinned("apache/airflow:3.3.2-python3.11")
    assert _is_pinned("apache/airflow@sha256:" + "0" * 64)
    assert not _is_pinned("apache/airflow")
    assert not _is_pinned("apache/airflow:latest")
    assert not _is_pinned("registry:5000/airflow")
    # A build argument in FROM counts only through the default of an ARG declared before the first FROM.
    resolved = _from_stages("ARG V=1.2.3\nFROM repo/a:${V} AS a\nARG W=4.5.6\nFROM repo/b:$V\nFROM repo/c:${W}\n")
    assert resolved == [("repo/a:1.2.3", "a"), ("repo/b:1.2.3", None), ("repo/c:${W}", None)]
    assert not _is_pinned(resolved[-1][0])


def test_dockerfile_base_image_is_pinned_to_the_required_airflow_and_python():
    images = _from_images()
    assert all(_is_pinned(i) for i in images), f"unpinned base image in {images}"
    base = images[-1]
    assert base.startswith("apache/airflow:"), "the image doubles as the chart's Airflow image"
    tag = base.split("@")[0].split(":", 1)[1]
    assert tag == f"{_pinned_airflow_version()}-python3.11", "base image, requirements.txt and Python must agree"


def test_dockerfile_sentiment_stage_builds_on_the_pods_image():
    """The models layer goes on top of exactly the image the other pods (and Airflow) run."""
    stages = {stage: image for image, stage in _from_stages() if stage}
    assert stages["sentiment"] == _helm_env()["CRYPTOETL_IMAGE"] == _airflow_image()
    assert _helm_env()["CRYPTOETL_SENTIMENT_IMAGE"] == Settings(image=stages["sentiment"]).image_for("sentiment")


def test_dockerfile_installs_pins_then_package_and_runs_as_airflow():
    text = DOCKERFILE.read_text()
    assert re.search(r"pip install --no-cache-dir -r \S*requirements\.txt", text)
    assert re.search(r"pip install --no-cache-dir --no-deps \S+", text)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] == "airflow", "the image must not end as root"
    for source in ("dags/", "plugins/", "include/"):
        assert re.search(rf"^COPY\s.*\b{re.escape(source)}\s+/opt/airflow/{re.escape(source)}\s*$", text, re.M)


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".airflow", ".pytest_cache"} <= ignored
