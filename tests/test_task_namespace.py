"""The task namespace's fences: k8s/network-policy.yaml and k8s/resource-quota.yaml say what they should.

- NetworkPolicy: default deny both ways for every pod in the namespace; egress only DNS to the
  cluster DNS, MySQL (3306) to the warehouse and HTTPS (443) to public addresses. A small evaluator
  of the policy answers "may a task pod connect to IP:port?" for addresses that must and must not
  be reachable. The allowed ports are tied to what the code uses: the warehouse URL's port and
  every source's https:// host.
- ResourceQuota: recomputed here from the code (resource profiles, pools, the DAGs'
  max_active_runs, Airflow's parallelism in helm-values.yaml, the init Job's resources) and
  compared with the manifest, so a changed profile or pool fails until the quota follows.
(Both also validate strictly against the Kubernetes schema in test_deploy_manifests.py.)
"""

from __future__ import annotations

import ipaddress
import json
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import REPO
from kubernetes.utils import parse_quantity

from cryptoetl.airflow.operators import CHECK_PROFILE
from cryptoetl.config import DEFAULT_RSS_FEEDS, RESOURCE_PROFILES, Settings
from cryptoetl.sources import registry

QUOTA_RESOURCES = {  # quota key -> how one pod's value is read from its profile / container resources
    "requests.cpu": lambda r: r["requests"]["cpu"],
    "requests.memory": lambda r: r["requests"]["memory"],
    "limits.memory": lambda r: r["limits"]["memory"],
}


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((REPO / "k8s" / name).read_text()) if d]


def _one(name: str, kind: str) -> dict:
    (doc,) = [d for d in _docs(name) if d["kind"] == kind]
    assert doc["metadata"]["namespace"] == Settings().namespace
    return doc


# --------------------------------------------------------------- NetworkPolicy


def _policy() -> dict:
    return _one("network-policy.yaml", "NetworkPolicy")


def _peer_allows(peer: dict, ip: str, namespace: str | None) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except", []))
    # a namespaceSelector peer matches pods of that namespace only
    labels = (peer.get("namespaceSelector") or {}).get("matchLabels", {})
    return namespace is not None and labels.get("kubernetes.io/metadata.name") == namespace


def egress_allowed(policy: dict, ip: str, port: int, protocol: str = "TCP", namespace: str | None = None) -> bool:
    """Whether a pod selected by ``policy`` may open ``protocol`` ``ip:port`` (``namespace``: the
    destination pod's namespace, None for an address outside the cluster)."""
    for rule in policy["spec"].get("egress") or []:
        ports = rule.get("ports")
        if ports and not any(p.get("protocol", "TCP") == protocol and p.get("port") == port for p in ports):
            continue
        peers = rule.get("to")
        if not peers or any(_peer_allows(peer, ip, namespace) for peer in peers):
            return True
    return False


def test_policy_denies_everything_by_default():
    spec = _policy()["spec"]
    assert spec["podSelector"] == {}, "every pod of the namespace"
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert not spec.get("ingress"), "nothing connects to a task pod"
    assert all(rule.get("ports") for rule in spec["egress"]), "no egress rule may open every port"


PUBLIC_API = "151.101.1.1"  # any public address
CASES = [
    # (ip, port, protocol, destination namespace, allowed?, why)
    (PUBLIC_API, 443, "TCP", None, True, "the external APIs over HTTPS"),
    ("203.0.113.7", 3306, "TCP", None, True, "the warehouse (may be outside the cluster)"),
    ("10.0.0.10", 3306, "TCP", None, True, "the warehouse on a private address"),
    ("10.96.0.10", 53, "UDP", "kube-system", True, "cluster DNS"),
    ("10.96.0.10", 53, "TCP", "kube-system", True, "cluster DNS over TCP"),
    ("8.8.8.8", 53, "UDP", None, False, "no outside DNS resolver"),
    ("10.96.0.1", 443, "TCP", None, False, "not the Kubernetes API server"),
    ("169.254.169.254", 443, "TCP", None, False, "not the cloud metadata endpoint"),
    ("169.254.169.254", 80, "TCP", None, False, "not the cloud metadata endpoint"),
    ("192.168.1.5", 443, "TCP", "airflow", False, "no in-cluster HTTPS service"),
    (PUBLIC_API, 80, "TCP", None, False, "no plain HTTP"),
    (PUBLIC_API, 22, "TCP", None, False, "nothing else"),
    ("10.1.2.3", 8080, "TCP", "airflow", False, "not the Airflow API server"),
]


@pytest.mark.parametrize("ip,port,protocol,namespace,allowed,why", CASES, ids=[c[-1] for c in CASES])
def test_policy_allows_exactly_what_the_steps_use(ip, port, protocol, namespace, allowed, why):
    assert egress_allowed(_policy(), ip, port, protocol, namespace) is allowed, why


def test_only_the_health_pod_may_reach_the_airflow_api_server():
    (health,) = [d for d in _docs("network-policy-health.yaml") if d["kind"] == "NetworkPolicy"]
    assert health["spec"]["podSelector"] == {"matchLabels": {"cryptoetl/step": "health"}}
    assert health["spec"]["policyTypes"] == ["Egress"]  # adds egress to that pod only; ingress stays denied
    assert egress_allowed(health, "10.1.2.3", 8080, "TCP", "airflow")
    assert not egress_allowed(health, "10.1.2.3", 8080, "TCP", "cryptoetl")
    assert not egress_allowed(health, PUBLIC_API, 443)
    assert not egress_allowed(health, "10.1.2.3", 5432, "TCP", "airflow")
    assert egress_allowed(_policy(), "10.1.2.3", 8080, "TCP", "airflow") is False  # every other pod: no


def test_evaluator_is_not_a_no_op():
    opened = {"spec": {"egress": [{}]}}  # one empty rule: allows everything
    closed = {"spec": {"egress": []}}
    assert egress_allowed(opened, "10.96.0.1", 443) and not egress_allowed(closed, PUBLIC_API, 443)


def test_allowed_ports_are_the_ones_the_code_uses():
    secret = next(d for d in _docs("secret.template.yaml") if d["kind"] == "Secret")
    warehouse = urlsplit(secret["stringData"]["CRYPTOETL_WAREHOUSE_URL"].replace("REPLACE_ME", "x"))
    assert egress_allowed(_policy(), "203.0.113.7", warehouse.port), "the warehouse's port"
    hosts = [plan.host for spec in registry.sources() for plan in spec.plans.values() if plan.host]
    hosts += [url for _, url in DEFAULT_RSS_FEEDS]
    assert hosts and all(urlsplit(h).scheme == "https" and urlsplit(h).port in (None, 443) for h in hosts), (
        "every source is reached over HTTPS on 443, the only API port the policy opens")


# --------------------------------------------------------------- ResourceQuota


def _quantity(value) -> Decimal:
    return parse_quantity(str(value))


def worst_case(units: list[tuple[dict, int]], parallelism: int) -> dict[str, Decimal]:
    """The most of each quota resource the tasks can hold at once. ``units``: (resources, how many
    such pods can run at once). At most ``parallelism`` tasks run; each resource is maximised on
    its own (the heaviest pods for it), which bounds every real mix."""
    out: dict[str, Decimal] = {"pods": Decimal(min(parallelism, sum(n for _, n in units)))}
    for key, read in QUOTA_RESOURCES.items():
        values = sorted((_quantity(read(r)) for r, n in units for _ in range(n)), reverse=True)
        out[key] = sum(values[:parallelism], Decimal(0))
    return out


def _profile_resources(name: str) -> dict:
    p = RESOURCE_PROFILES[name]
    return {"requests": {"cpu": p.cpu_request, "memory": p.memory_request}, "limits": {"memory": p.memory_limit}}


def _task_units(dags: dict) -> list[tuple[dict, int]]:
    pools = json.loads((REPO / "include" / "pools.json").read_text())
    by_pool: dict[str, list[str]] = {}
    units = []
    for dag in dags.values():
        for task in dag.tasks:
            profile = task.step.profile if task.verb == "run" else CHECK_PROFILE  # the gate is SQL: small
            if task.pool and task.pool != "default_pool":
                by_pool.setdefault(task.pool, []).append(profile)
            else:  # no pool: as many at once as the DAG has active runs
                units.append((_profile_resources(profile), dag.max_active_runs))
    for pool, profiles in by_pool.items():  # a pool's slots, each filled with its heaviest step
        heaviest = max(profiles, key=lambda n: _quantity(RESOURCE_PROFILES[n].memory_limit))
        units.append((_profile_resources(heaviest), pools[pool]["slots"]))
    return units


def test_worst_case_arithmetic():
    small = {"requests": {"cpu": "100m", "memory": "1Mi"}, "limits": {"memory": "2Mi"}}
    big = {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    got = worst_case([(small, 3), (big, 1)], parallelism=2)
    assert got["pods"] == 2 and got["requests.cpu"] == Decimal("2.1")
    assert worst_case([(small, 3)], parallelism=8)["pods"] == 3


def test_quota_fits_the_most_the_pipeline_runs_at_once(k8s_dags):
    quota = _one("resource-quota.yaml", "ResourceQuota")["spec"]["hard"]
    helm = yaml.safe_load((REPO / "helm-values.yaml").read_text())
    parallelism = int(helm["config"]["core"]["parallelism"])
    tasks = worst_case(_task_units(k8s_dags), parallelism)
    (job,) = [d for d in _docs("init-db-job.yaml") if d["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    init = worst_case([(container["resources"], 1)], parallelism=1)
    want = {key: tasks[key] + init[key] for key in tasks}
    got = {key: _quantity(quota[key]) for key in want}
    assert got == want, "k8s/resource-quota.yaml no longer matches the profiles, pools or parallelism"
    assert set(quota) == set(want), "no CPU limit in the quota: task pods deliberately set none"
