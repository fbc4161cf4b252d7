"""The one place that decides how a step is launched, and owns every pod default.

``step_task(step_name)`` returns, for ``CRYPTOETL_MODE=kubernetes``, a
``KubernetesPodOperator`` and, for ``local``, a subprocess task. Both run the same command:

    python -m cryptoetl run STEP --interval START/END [--interval ...]

Which intervals? A scheduled or backfill run computes its own data interval. A run
triggered by upstream asset events computes the union of the intervals those events
carry (in ``extra["intervals"]``), each extended by the step's lookahead for that input
(``Step.lookahead_for``): a price correction on day X changes EMAs and 7-day returns after X
too, and a macro value is used by every hour until the next release. A derived load then plans
them (``planning.py``): the intervals of a history load wait until it is over, for one rebuild.
The load hands its intervals to its gate (XCom), and the gate attaches them to its asset event,
so the next step downstream rebuilds exactly what changed. A run with neither an interval nor
events fails: it never falls back to "now".

Pod defaults, and why:
- image: ``CRYPTOETL_IMAGE``, a pinned tag (validated in config), so a backfill runs the
  same code as the scheduled run did; the sentiment step runs ``CRYPTOETL_SENTIMENT_IMAGE``
  (default ``<repository>-sentiment:<tag>``), the same code plus torch models baked in.
- namespace / service account ``cryptoetl`` / ``cryptoetl-pods``: task pods need no
  Kubernetes API access, so their account has none (k8s/rbac.yaml).
- node selector ``node-type: data-collection`` plus a toleration for the node's
  ``dedicated=data-collection:NoSchedule`` taint: collection traffic leaves the cluster
  from one node pool, and nothing else lands there by accident.
- resources: the step's named profile (config.RESOURCE_PROFILES): memory limit, no CPU limit.
- secrets: the whole ``data-collection-secrets`` Secret as environment variables. Never as
  arguments: arguments show up in the UI, in logs and in ``kubectl describe``.
- ``on_finish_action="delete_succeeded_pod"``: failed pods stay for ``kubectl logs``.
- ``startup_timeout_seconds``: 600 s covers an image pull on a fresh node.
- retries: 3 with exponential backoff from 2 min (max 30 min): rides out API hiccups and
  rate-limit windows without hammering the API. ``CRYPTOETL_RETRY_DELAY`` (seconds) changes the
  first delay: the local demo retries after 15 s, since it waits for retries to finish.
- security: the namespace enforces Pod Security "restricted" (k8s/namespace.yaml), so every pod
  must pass it or is refused at creation. Pod: ``runAsNonRoot``, user ``airflow`` of the image
  (uid 50000, gid 0: the image's files are group 0), seccomp ``RuntimeDefault``. Container: no
  privilege escalation, every capability dropped, read-only root filesystem (a compromised step
  cannot alter the code or the models it runs). k8s/init-db-job.yaml carries the same.
- a writable ``/tmp``: an ``emptyDir`` (at most 1 GiB, gone with the pod), the only writable
  path; ``TMPDIR`` points at it (loading a model, torch creates ``torchinductor_<user>`` there)
  and ``XDG_CACHE_HOME=/tmp/.cache`` sends the caches of Hugging Face and torch (``HF_HOME`` and
  ``TORCH_HOME`` default under it) there. ``HOME`` stays the image's: its Python packages may live
  under it. The sentiment models are read from the image (``HF_HUB_CACHE``, ``CRYPTOETL_*_PATH``),
  never written.
"""

from __future__ import annotations

import os
import re
import sys
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import timedelta
from functools import cache
from typing import Any

from airflow.sdk import Asset, BaseOperator

from cryptoetl import config, redaction
from cryptoetl.airflow import planning
from cryptoetl.airflow.planning import resolve_intervals
from cryptoetl.config import RESOURCE_PROFILES, ConfigError, Settings
from cryptoetl.intervals import Interval, parse_interval
from cryptoetl.sources import registry
from cryptoetl.step import Step
from cryptoetl.steps import get_step

ASSET_URI = "cryptoetl://warehouse/{table}"

# The image's user (Dockerfile: USER airflow): uid 50000, primary group 0.
RUN_AS_USER = 50000
RUN_AS_GROUP = 0
TMP_DIR = "/tmp"
TMP_SIZE_LIMIT = "1Gi"
# Fixed environment of every pod: the writable places (see the module docstring).
WRITABLE_ENV = {"TMPDIR": TMP_DIR, "XDG_CACHE_HOME": f"{TMP_DIR}/.cache"}


def retry_args(settings: Settings) -> dict[str, Any]:
    return {
        "retries": 3,
        "retry_delay": timedelta(seconds=settings.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
    }

def pod_env_names() -> tuple[str, ...]:
    """Non-secret settings that pods must share with the scheduler's view of the world: the generic
    ones marked ``pod`` in config.py, and each registered source's plan, base URL and rate. Never
    ``*_API_KEY``: keys reach pods only through the Secret."""
    return (*config.pod_env_names(), *(name for spec in registry.sources() for name in spec.pod_env))


def secret_keys() -> tuple[str, ...]:
    """The keys of the data-collection Secret (k8s/secret.template.yaml): the warehouse, as a URL for
    the pods and as an Airflow connection, the Airflow REST API with the account the health check
    creates backfills as, and the API key of every source that takes one."""
    return ("CRYPTOETL_WAREHOUSE_URL", "AIRFLOW_CONN_CRYPTOETL_WAREHOUSE", "CRYPTOETL_AIRFLOW_API_URL",
            *(spec.env_name("API_KEY") for spec in registry.sources() if spec.needs_key))


def table_asset(table: str) -> Asset:
    """The Airflow asset for a warehouse table; steps emit it, downstream DAGs schedule on it."""
    return Asset(name=table, uri=ASSET_URI.format(table=table), group="warehouse")


def command_for(step: Step, intervals: Iterable[Interval], verb: str = "run", options: Iterable[str] = ()) -> list[str]:
    """Arguments after ``python -m cryptoetl``: identical for pods and local subprocesses. ``verb``
    ``run`` loads, ``check`` is the quality gate of what it loaded."""
    args = [verb, step.name]
    for interval in intervals:
        args += ["--interval", str(interval)]
    return args + [f"--{name}" for name in options]


def conf_options(context: Mapping[str, Any], step: Step) -> list[str]:
    """Step options a run's conf asks for (``{"options": ["refetch"]}``: the health check's refills, or
    Trigger DAG with config in the UI); refused unless the step declares them."""
    dag_run = context.get("dag_run")
    conf = (getattr(dag_run, "conf", None) or {}) if dag_run is not None else {}
    wanted = conf.get("options") or []
    known = {option.name for option in step.options}
    if not isinstance(wanted, list) or any(name not in known for name in wanted):
        raise ConfigError(f"{step.name}: the run's conf options {wanted!r} are not among this step's options "
                          f"{sorted(known)}")
    return list(wanted)


def record_outlet(context: Mapping[str, Any], step: Step, intervals: Iterable[Interval],
                  history: Iterable[Interval] = ()) -> None:
    """Attach what was written to this task's asset event, for downstream DAGs; ``history``: those of
    the intervals that a history load wrote (``planning``: downstream may hold them back)."""
    context["outlet_events"][table_asset(step.writes)].extra = {
        "intervals": [str(iv) for iv in intervals], "history": [str(iv) for iv in history]}


class _StepMixin:
    step: Step
    verb: str = "run"
    emits: bool = True  # attach the intervals to the asset event (the DAG's last task does)
    _plan: planning.Plan | None = None

    def _prepare(self, context: Mapping[str, Any]) -> list[str]:
        """The command: the intervals of this run (a load plans them, its gate takes the load's from
        XCom), and the conf's step options for a load."""
        ti = context.get("ti")  # None when a test calls execute() with a bare context
        if self.verb == "run":
            intervals, history = self._plan_load(context)
            for key, value in (("intervals", intervals), ("history", history)):
                if ti is not None:
                    ti.xcom_push(key=key, value=[str(iv) for iv in value])
        else:
            pulled = [ti.xcom_pull(task_ids=self.step.task_id, key=key) if ti is not None else None
                      for key in ("intervals", "history")]
            if pulled[0] is None:  # no load task ran in this run (a lone gate): what the run covers
                intervals = resolve_intervals(context, self.step)
                history = intervals if planning.is_history_run(context) else []
            else:
                intervals, history = ([parse_interval(text) for text in texts or ()] for texts in pulled)
        self.log.info("%s %s over %s%s", self.verb, self.step.name, ", ".join(map(str, intervals)),
                      f" ({planning.HISTORY_MARK} {', '.join(map(str, history))})" if history else "")
        self._intervals, self._history = intervals, history
        options = conf_options(context, self.step) if self.verb == "run" else []
        return command_for(self.step, intervals, self.verb, options)

    def _plan_load(self, context: Mapping[str, Any]) -> tuple[list[Interval], list[Interval]]:
        """A source load covers its run; a derived one plans by range (``planning``), and is skipped
        (its gate too, so no event goes on) when all its work waits for a history load to end."""
        if not self.step.triggered_by:
            intervals = resolve_intervals(context, self.step)
            return intervals, intervals if planning.is_history_run(context) else []
        from airflow.sdk.exceptions import AirflowSkipException

        timed = None if context.get("triggering_asset_events") else resolve_intervals(context, self.step)
        self._plan = plan = planning.plan_run(context, self.step, timed)
        if not plan.run and not plan.pending:
            raise AirflowSkipException(
                f"{self.step.name}: nothing to rebuild: the history load's intervals of this run's events were "
                f"rebuilt by a run that started after they were sent (Variable "
                f"{planning.REBUILT_VARIABLE.format(dag_id=self.step.dag_id)})")
        if not plan.run:
            raise AirflowSkipException(
                f"{self.step.name}: {len(plan.pending)} interval(s) of a history load held back until the DAGs "
                f"upstream are done ({', '.join(map(str, plan.pending))}); Variable "
                f"{planning.VARIABLE.format(dag_id=self.step.dag_id)}")
        return plan.run, plan.history

    def _emit(self, context: Mapping[str, Any]) -> None:
        if self._plan is not None:
            planning.finish(self.step, self._plan)
        if self.emits:
            record_outlet(context, self.step, self._intervals, self._history)


# A Python exception line ("sqlalchemy.exc.IntegrityError: ...", "KeyError: 'x'"), and the noise
# SQLAlchemy prints after one.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b")
_NOISE = "sqlalche.me"


def failure_lines(output: Iterable[str]) -> str:
    """What a failed child's output says went wrong, on one line: the CLI's ``error:`` lines, else
    the last exception line, else the last line; never SQLAlchemy's "Background on this error" link."""
    every = [line.strip() for line in output if line.strip()]
    lines = [line for line in every if _NOISE not in line]
    if errors := [line for line in lines if line.startswith("error:")]:
        return " | ".join(errors[-3:])
    exceptions = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return (exceptions or lines or every or ["(no output)"])[-1]


class _Tail:
    """Stands in for a SubprocessHook's logger: passes everything on, and keeps the child's last
    lines (the hook logs each as ``log.info("%s", line)``; its result holds only the very last)."""

    def __init__(self, log: Any, keep: int = 50) -> None:
        self._log = log
        self.lines: deque[str] = deque(maxlen=keep)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> Any:
        if msg == "%s" and len(args) == 1:
            self.lines.append(str(args[0]))
        return self._log.info(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


class LocalStepOperator(_StepMixin, BaseOperator):
    """Runs the step's CLI command as a subprocess of the task (local mode).

    The warehouse URL is resolved here, inside the task, where Airflow connections are
    available, and handed to the child through its environment (never its arguments).
    A failure raises with the lines of the child's output that say why (``failure_lines``), not
    just its last line, which after a database error is SQLAlchemy's link; redacted, and the
    secrets are also handed to Airflow's own log masker.
    """

    ui_color = "#e8f4ea"

    def __init__(self, *, step: Step, settings: Settings, verb: str = "run", emits: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.settings = settings
        self.verb, self.emits = verb, emits

    def execute(self, context: Any) -> None:
        from airflow.providers.standard.hooks.subprocess import SubprocessHook
        from airflow.sdk.exceptions import AirflowException
        from airflow.sdk.log import mask_secret

        from cryptoetl.airflow.connection import warehouse_url

        command = self._prepare(context)
        env = dict(os.environ)
        env["CRYPTOETL_WAREHOUSE_URL"] = url = warehouse_url(self.settings)
        secrets = (*redaction.settings_secrets(self.settings), *redaction.url_passwords(url))
        redaction.register(*secrets)
        for secret in secrets:
            mask_secret(secret)
        python = self.settings.python or sys.executable
        hook = SubprocessHook()
        hook._log = tail = _Tail(hook.log)  # LoggingMixin's cached logger: the hook logs through it
        result = hook.run_command(command=[python, "-m", "cryptoetl", *command], env=env)
        if result.exit_code != 0:
            why = redaction.redact(failure_lines(tail.lines or [result.output]))
            what = f"step {self.step.name}" if self.verb == "run" else f"{self.verb} of {self.step.name}"
            raise AirflowException(f"{what} exited with code {result.exit_code}: {why}")
        self._emit(context)


@cache
def _pod_operator_class():
    # Imported lazily: local mode never needs the Kubernetes client.
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    class StepPodOperator(_StepMixin, KubernetesPodOperator):
        """KubernetesPodOperator that derives its ``--interval`` arguments at run time."""

        def __init__(self, *, step: Step, verb: str = "run", emits: bool = True, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.step = step
            self.verb, self.emits = verb, emits

        def set_intervals(self, intervals: Iterable[Interval]) -> None:
            """The arguments for ``intervals`` (what ``execute`` does; tests render pods with it)."""
            self.arguments = command_for(self.step, intervals, self.verb)

        def execute(self, context: Any) -> Any:
            self.arguments = self._prepare(context)
            result = super().execute(context)
            self._emit(context)
            return result

    return StepPodOperator


def pod_security_kwargs() -> dict[str, Any]:
    """The pod's and the container's security contexts and the writable ``/tmp``: what Pod Security
    "restricted" requires, plus a read-only root filesystem (see the module docstring)."""
    from kubernetes.client import models as k8s

    return {
        "security_context": k8s.V1PodSecurityContext(
            run_as_non_root=True, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_GROUP, fs_group=RUN_AS_GROUP,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        "container_security_context": k8s.V1SecurityContext(
            allow_privilege_escalation=False, privileged=False, read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        "volumes": [k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=TMP_SIZE_LIMIT))],
        "volume_mounts": [k8s.V1VolumeMount(name="tmp", mount_path=TMP_DIR)],
    }


def pod_kwargs(step: Step, settings: Settings) -> dict[str, Any]:
    """Every KubernetesPodOperator argument for ``step``; see the module docstring for why."""
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s

    profile = RESOURCE_PROFILES[step.profile]
    limits = {"memory": profile.memory_limit}
    if profile.cpu_limit:
        limits["cpu"] = profile.cpu_limit
    env = {**WRITABLE_ENV, **{name: os.environ[name] for name in pod_env_names() if os.environ.get(name)}}
    if step.image == "sentiment":
        # no CPU limit means no cgroup quota: torch would size its threads to the whole node
        env.setdefault("CRYPTOETL_TORCH_THREADS", str(max(1, int(float(profile.cpu_request)))))
    return {
        "name": step.task_id.replace("_", "-"),
        "namespace": settings.namespace,
        "image": settings.image_for(step.image),
        "image_pull_policy": "IfNotPresent",
        "cmds": ["python", "-m", "cryptoetl"],
        "arguments": command_for(step, []),
        "env_vars": env,
        "secrets": [Secret("env", None, settings.secret_name)],
        "service_account_name": settings.service_account,
        "node_selector": dict(settings.node_selector),
        "tolerations": [
            k8s.V1Toleration(key="dedicated", operator="Equal", value="data-collection", effect="NoSchedule")
        ],
        "container_resources": k8s.V1ResourceRequirements(
            requests={"cpu": profile.cpu_request, "memory": profile.memory_request}, limits=limits
        ),
        "labels": {"app.kubernetes.io/name": "cryptoetl", "cryptoetl/step": step.name},
        "in_cluster": True,
        "get_logs": True,
        "do_xcom_push": False,
        "on_finish_action": "delete_succeeded_pod",
        "startup_timeout_seconds": settings.startup_timeout_seconds,
        "reattach_on_restart": True,
        **pod_security_kwargs(),
    }


CHECK_PROFILE = "io-small"


def check_task_id(step: Step) -> str:
    return f"check_{step.writes}"


def step_task(step_name: str, *, settings: Settings | None = None, verb: str = "run", emits: bool = True,
              **overrides: Any) -> BaseOperator:
    """The task that runs ``step_name`` (``verb`` run), or its quality gate (``check``): a pod in
    Kubernetes mode, a subprocess locally. ``emits``: the task carries the table's asset event (the
    gate does, so that nothing downstream starts on an interval that failed it)."""
    settings = settings or Settings.from_env()
    step = get_step(step_name)
    common: dict[str, Any] = {
        "task_id": step.task_id if verb == "run" else check_task_id(step),
        "outlets": [table_asset(step.writes)] if emits else [],
        "doc_md": step.description if verb == "run" else
        f"The quality gate of `{step.writes}` over this run's intervals (quality/checks.py): a failed hard check "
        "fails the run and keeps the features off the interval until a rerun passes.",
        **retry_args(settings),
    }
    if step.pool and verb == "run":
        common["pool"] = step.pool
    common.update(overrides)
    if settings.mode == "kubernetes":
        # the gate is SQL in the warehouse: the small profile and the base image, whatever the step's
        kwargs = pod_kwargs(step if verb == "run" else replace(step, profile=CHECK_PROFILE, image="base"), settings)
        if verb != "run":
            kwargs["name"] = common["task_id"].replace("_", "-")
            kwargs["arguments"] = command_for(step, [], verb)
        return _pod_operator_class()(step=step, verb=verb, emits=emits, **kwargs, **common)
    return LocalStepOperator(step=step, settings=settings, verb=verb, emits=emits, **common)
