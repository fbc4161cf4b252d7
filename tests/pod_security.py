"""A checker of the Kubernetes Pod Security Standards' "restricted" profile, for tests.

What the Pod Security admission controller enforces in a namespace labelled
``pod-security.kubernetes.io/enforce: restricted`` (k8s/namespace.yaml), written out from
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (the "baseline" controls,
which "restricted" includes, and the "restricted" ones). Input is a pod spec as the API sees it
(camelCase dict: a rendered pod's ``spec``, a Job's ``spec.template.spec``). Output is one line
per violation; an empty list means the pod would be admitted.

Container-level settings override pod-level ones, as in the API: ``runAsNonRoot`` and
``seccompProfile`` pass when set on the pod and not contradicted by any container, or when set on
every container.
"""

from __future__ import annotations

from collections.abc import Iterator

# Restricted: only these volume types (no hostPath, nfs, iscsi, ... and no deprecated in-tree types).
ALLOWED_VOLUME_TYPES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
})
VOLUME_META_FIELDS = frozenset({"name"})
# Restricted: every capability dropped ("ALL"); only this one may be added back.
ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SECCOMP_OK = frozenset({"RuntimeDefault", "Localhost"})
# Baseline: the "safe" sysctls.
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})
SELINUX_TYPES_OK = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
APPARMOR_OK = frozenset({"RuntimeDefault", "Localhost"})


def _containers(spec: dict) -> Iterator[tuple[str, dict]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            yield f"{field}[{container.get('name', '?')}]", container


def _host_namespaces(spec: dict) -> list[str]:
    return [f"spec.{field} is true: shares the node's namespace"
            for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]


def _volumes(spec: dict) -> list[str]:
    problems = []
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - VOLUME_META_FIELDS
        for kind in sorted(kinds - ALLOWED_VOLUME_TYPES):
            problems.append(f"volume {volume.get('name')!r}: type {kind} is not allowed (hostPath and other "
                            f"node or network volumes are refused)")
    return problems


def _pod_level(spec: dict) -> list[str]:
    context = spec.get("securityContext") or {}
    problems = []
    if context.get("runAsUser") == 0:
        problems.append("pod securityContext.runAsUser is 0 (root)")
    for sysctl in context.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            problems.append(f"pod sysctl {sysctl.get('name')} is not in the safe set")
    problems += _common_context("pod", context)
    return problems


def _common_context(where: str, context: dict) -> list[str]:
    """Controls that apply alike to the pod's and to each container's securityContext."""
    problems = []
    if (context.get("windowsOptions") or {}).get("hostProcess"):
        problems.append(f"{where}: windowsOptions.hostProcess is true")
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES_OK or selinux.get("user") or selinux.get("role"):
        problems.append(f"{where}: seLinuxOptions {selinux} are not allowed")
    apparmor = context.get("appArmorProfile")
    if apparmor and apparmor.get("type") not in APPARMOR_OK:
        problems.append(f"{where}: appArmorProfile {apparmor.get('type')} is not allowed")
    seccomp = (context.get("seccompProfile") or {}).get("type")
    if seccomp is not None and seccomp not in SECCOMP_OK:
        problems.append(f"{where}: seccompProfile {seccomp} (only RuntimeDefault or Localhost)")
    return problems


def _container(where: str, container: dict, pod_context: dict) -> list[str]:
    context = container.get("securityContext") or {}
    problems = _common_context(where, context)
    if context.get("privileged"):
        problems.append(f"{where}: privileged")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation must be false")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        problems.append(f"{where}: capabilities must drop ALL")
    for added in sorted(set(capabilities.get("add") or []) - ALLOWED_ADDED_CAPABILITIES):
        problems.append(f"{where}: capability {added} added (only NET_BIND_SERVICE may be)")
    if context.get("runAsUser") == 0:
        problems.append(f"{where}: runAsUser is 0 (root)")
    if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
        problems.append(f"{where}: runAsNonRoot must be true (on the pod or the container)")
    seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
    if seccomp not in SECCOMP_OK:
        problems.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost (on the pod or the container)")
    if context.get("procMount", "Default") != "Default":
        problems.append(f"{where}: procMount {context['procMount']}")
    for port in container.get("ports") or []:
        if port.get("hostPort"):
            problems.append(f"{where}: hostPort {port['hostPort']}")
    return problems


def restricted_violations(spec: dict) -> list[str]:
    """Every way ``spec`` (a pod spec, camelCase) breaks the "restricted" Pod Security profile."""
    problems = _host_namespaces(spec) + _volumes(spec) + _pod_level(spec)
    pod_context = spec.get("securityContext") or {}
    containers = list(_containers(spec))
    if not containers:
        problems.append("the pod has no containers")
    for where, container in containers:
        problems += _container(where, container, pod_context)
    return problems
