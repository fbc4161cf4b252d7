"""DAG integrity and policy, parse-time hygiene, interval resolution and rendered pods."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from types import SimpleNamespace

import kubernetes_validate
import pytest
from conftest import REPO
from helpers import render_pod, utc

from cryptoetl import __version__
from cryptoetl.airflow.dag_factory import DEADLINE_GRACE
from cryptoetl.airflow.operators import record_outlet, resolve_intervals, table_asset
from cryptoetl.config import RESOURCE_PROFILES, ConfigError, Settings
from cryptoetl.intervals import Interval
from cryptoetl.steps import get_step, steps

DAG_FILES = sorted(p.stem for p in (REPO / "dags").glob("*.py"))
K8S_VERSION = kubernetes_validate.latest_version()


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == set(DAG_FILES), "file name must equal dag_id"


def test_dag_policy(dagbag):
    from airflow.sdk import CronDataIntervalTimetable

    for dag in dagbag.dags.values():
        assert dag.doc_md and "backfill" in dag.doc_md.lower(), dag.dag_id
        assert dag.tags and "cryptoetl" in dag.tags
        assert dag.max_active_runs >= 1 and dag.start_date is not None
        assert all(t.owner == "data-platform" for t in dag.tasks)
        for task in dag.tasks:
            assert task.retries >= 1 and task.retry_exponential_backoff, task.task_id
            assert task.task_id.split("_")[0] in {"load", "compute", "build", "extract", "score", "check"}
        *first, last = dag.tasks  # load -> check: the gate, last, emits the table's asset; nothing else does
        assert [a.name for a in last.outlets] == [last.step.writes], dag.dag_id
        assert all(not task.outlets and task.downstream_task_ids == {last.task_id} for task in first), dag.dag_id
        if "health" not in dag.tags:
            assert (last.verb, [t.verb for t in first]) == ("check", ["run"]), dag.dag_id
        timetable = dag.timetable
        if "source" in dag.tags:
            assert isinstance(timetable, CronDataIntervalTimetable)
            # A source that can only serve its latest items must not pretend to catch up.
            assert dag.catchup is ("no-backfill" not in dag.tags), dag.dag_id
        elif "derived" in dag.tags:  # asset events plus a cron interval, so it stays backfillable
            assert isinstance(timetable.timetable, CronDataIntervalTimetable) and dag.catchup is False
            assert dag.max_active_runs == 1
        else:  # the health check: hourly, no catch-up (it scans days, not its hour)
            assert set(dag.tags) == {"cryptoetl", "health"} and dag.catchup is False
            assert isinstance(timetable, CronDataIntervalTimetable)
        # every scheduled DAG raises a deadline alert when a run is late, calling our callback in the
        # triggerer: its interval's end + the grace, from the logical date (the interval's start)
        cron = getattr(getattr(timetable, "timetable", timetable), "expression", None)
        if cron:
            (alert,) = dag.deadline
            assert alert.callback.path == "cryptoetl.airflow.alerts.run_late", dag.dag_id
            assert type(alert.reference).__name__ == "DagRunLogicalDateDeadline"
            period = {"0 * * * *": timedelta(hours=1)}.get(cron, timedelta(days=1))
            assert alert.interval == period + DEADLINE_GRACE, dag.dag_id


def test_every_pool_a_task_names_is_declared_as_code(dagbag):
    declared = json.loads((REPO / "include" / "pools.json").read_text())
    used = {t.pool for dag in dagbag.dags.values() for t in dag.tasks} - {"default_pool"}
    assert used and used <= set(declared), f"undeclared pools: {used - set(declared)}"


def test_asset_graph_connects_prices_to_features(dagbag):
    produced: dict[str, set[str]] = {}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            for asset in task.outlets:
                produced.setdefault(asset.name, set()).add(dag.dag_id)
    assert produced["price_data_real"] == {"prices_coingecko", "prices_coingecko_hourly"}  # history, freshness
    assert produced["technical_indicators"] == {"technical_indicators"}
    assert produced["ml_features_materialized"] == {"ml_features"}
    triggers = {dag.dag_id: dag.timetable.asset_condition for dag in dagbag.dags.values() if "derived" in dag.tags}
    assert triggers["technical_indicators"] == table_asset("price_data_real")
    features_inputs = {asset.name for asset in triggers["ml_features"].objects}
    assert features_inputs == {"technical_indicators", "macro_indicators", "crypto_onchain_data",
                               "crypto_sentiment_data"}
    for table in features_inputs - {"crypto_sentiment_data"}:  # news reaches features via sentiment
        assert produced[table], table


# What DAG parsing must never import: the data stack, the models, the step bodies and the warehouse.
PARSE_FORBIDDEN = ("pandas", "numpy", "sqlalchemy", "torch", "transformers", "fredapi", "cryptoetl.warehouse",
                   "cryptoetl.loaders", "cryptoetl.transforms")


@pytest.mark.parametrize("mode", ["local", "kubernetes"])
def test_dag_files_do_no_io_and_import_no_heavy_module_at_parse_time(mode):
    """Parse every DAG file in a fresh interpreter that fails on network, DB or subprocess use, and
    check what parsing added to sys.modules beyond Airflow's own start-up (which already holds
    SQLAlchemy: the framework's imports are not ours to police)."""
    probe = f"""
import sys, runpy
BLOCKED = {{"socket.connect", "sqlite3.connect", "subprocess.Popen", "os.system"}}
def hook(event, args):
    if event in BLOCKED:
        raise RuntimeError(f"I/O at parse time: {{event}} {{args!r:.120}}")
import airflow.sdk, airflow.models.asset  # the framework's own start-up
before = set(sys.modules)
sys.addaudithook(hook)
for name in {DAG_FILES!r}:
    runpy.run_path("{REPO}/dags/" + name + ".py")
added = set(sys.modules) - before
print("HEAVY=" + ",".join(f for f in {PARSE_FORBIDDEN!r} if any(m == f or m.startswith(f + ".") for m in added)))
print("CRYPTOETL=" + ",".join(sorted(m for m in added if m.startswith("cryptoetl"))))
"""
    env = dict(os.environ, CRYPTOETL_MODE=mode)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert lines["HEAVY"] == "", f"imported at parse time: {lines['HEAVY']}"
    assert "cryptoetl.steps" in lines["CRYPTOETL"].split(",")  # the probe did parse our DAGs


# --- which intervals a run builds -------------------------------------------------------

def _event(*intervals, source="prices_coingecko"):
    return SimpleNamespace(extra={"intervals": [str(i) for i in intervals]}, source_dag_id=source)


DAY = [Interval(utc(2026, 1, d), utc(2026, 1, d + 1)) for d in range(1, 28)]


def test_scheduled_run_builds_its_data_interval():
    ctx = {"data_interval_start": DAY[0].start, "data_interval_end": DAY[0].end, "triggering_asset_events": {}}
    assert resolve_intervals(ctx, get_step("prices")) == [DAY[0]]


def test_timed_run_of_derived_step_off_the_hour_covers_the_surrounding_hours():
    # technical_indicators runs at 00:30 so that the midnight price runs have landed
    ctx = {"data_interval_start": utc(2026, 1, 1, 0, 30), "data_interval_end": utc(2026, 1, 2, 0, 30),
           "triggering_asset_events": {}}
    assert resolve_intervals(ctx, get_step("technical")) == [Interval(utc(2026, 1, 1), utc(2026, 1, 2, 1))]
    with pytest.raises(ConfigError, match="hour boundary"):  # a source step never widens what it loads
        resolve_intervals(ctx, get_step("prices"))


def test_asset_triggered_run_merges_event_intervals_and_extends_by_lookahead():
    step = get_step("technical")
    ctx = {"triggering_asset_events": {"price_data_real": [_event(DAY[0]), _event(DAY[1]), _event(DAY[20])]},
           "data_interval_start": None, "data_interval_end": None}
    lookahead = timedelta(hours=step.lookahead_for("price_data_real"))
    assert resolve_intervals(ctx, step) == [Interval(DAY[0].start, DAY[20].end + lookahead)]
    apart = {**ctx, "triggering_asset_events": {"technical_indicators": [_event(DAY[10]), _event(DAY[0])]}}
    features = get_step("features")  # indicator events carry their own lookahead: none added
    assert resolve_intervals(apart, features) == [DAY[0], DAY[10]]


def test_each_input_extends_by_its_own_lookahead():
    """A macro value is used by every hour until the next release (up to 120 days); a new
    article only by the 7-day windows. The event's asset names the input."""
    features = get_step("features")
    macro = SimpleNamespace(**vars(_event(DAY[0], source="macro_fred")), asset=SimpleNamespace(name="macro_indicators"))
    news = SimpleNamespace(**vars(_event(DAY[0], source="news_sentiment")),
                           asset=SimpleNamespace(name="crypto_sentiment_data"))
    ctx = {"data_interval_start": None, "data_interval_end": None}
    assert resolve_intervals({**ctx, "triggering_asset_events": {"a": [macro]}}, features) == [
        Interval(DAY[0].start, DAY[0].end + timedelta(days=120))]
    assert resolve_intervals({**ctx, "triggering_asset_events": {"b": [news]}}, features) == [
        Interval(DAY[0].start, DAY[0].end + timedelta(days=7))]


def test_run_without_interval_or_events_fails_instead_of_using_now():
    ctx = {"data_interval_start": None, "data_interval_end": None, "triggering_asset_events": {}}
    with pytest.raises(ConfigError, match="no data interval"):
        resolve_intervals(ctx, get_step("features"))


def test_event_without_intervals_is_a_clear_error():
    ctx = {"triggering_asset_events": {"a": [SimpleNamespace(extra={}, source_dag_id="manual")]}}
    with pytest.raises(ConfigError, match=r"extra\['intervals'\]"):
        resolve_intervals(ctx, get_step("technical"))


def test_a_runs_conf_options_reach_the_load_command_and_only_the_steps_own():
    """The health check's refills pass {"options": ["refetch"]}: the load runs with --refetch, its gate
    without; an option the step does not declare fails the task, naming it."""
    from cryptoetl.airflow.operators import command_for, conf_options

    prices = get_step("prices")
    context = {"dag_run": SimpleNamespace(conf={"options": ["refetch"]})}
    assert command_for(prices, [DAY[0]], "run", conf_options(context, prices))[-1] == "--refetch"
    assert conf_options({"dag_run": SimpleNamespace(conf={})}, prices) == []
    with pytest.raises(ConfigError, match="not among this step's options"):
        conf_options(context, get_step("technical"))


def test_record_outlet_attaches_intervals_for_downstream():
    accessor = {table_asset("price_data_real"): SimpleNamespace(extra=None)}
    record_outlet({"outlet_events": accessor}, get_step("prices"), [DAY[0]])
    assert accessor[table_asset("price_data_real")].extra == {"intervals": [str(DAY[0])], "history": []}
    record_outlet({"outlet_events": accessor}, get_step("prices"), DAY[:2], history=DAY[1:2])
    assert accessor[table_asset("price_data_real")].extra == {"intervals": [str(DAY[0]), str(DAY[1])],
                                                              "history": [str(DAY[1])]}


# --- Kubernetes mode ---------------------------------------------------------------------

def test_every_task_is_a_pod_on_the_data_collection_node(k8s_dags):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    settings = Settings.from_env({"CRYPTOETL_MODE": "kubernetes"})
    tasks = [t for dag in k8s_dags.values() for t in dag.tasks]
    assert sorted(t.step.name for t in tasks if t.verb == "run") == sorted(steps())
    assert len(tasks) == 2 * len(steps()) - 1  # a gate after every step but the health check
    for task in tasks:
        assert isinstance(task, KubernetesPodOperator)
        pod = render_pod(task, DAY[0])
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        spec, (container,) = pod["spec"], pod["spec"]["containers"]
        assert spec["nodeSelector"] == {"node-type": "data-collection"}
        assert {"key": "dedicated", "operator": "Equal", "value": "data-collection",
                "effect": "NoSchedule"} in spec["tolerations"]
        assert spec["serviceAccountName"] == "cryptoetl-pods"
        sentiment_image = f"ghcr.io/cryptoetl/cryptoetl-sentiment:{__version__}"
        want = sentiment_image if task.step.name == "sentiment" and task.verb == "run" else settings.image
        assert container["image"] == want and not container["image"].endswith(":latest")
        assert container["command"] == ["python", "-m", "cryptoetl"]
        assert container["args"] == [task.verb, task.step.name, "--interval", str(DAY[0])]
        profile = RESOURCE_PROFILES[task.step.profile if task.verb == "run" else "io-small"]
        assert container["resources"]["requests"] == {"cpu": profile.cpu_request, "memory": profile.memory_request}
        assert container["resources"]["limits"]["memory"] == profile.memory_limit
        assert container["envFrom"] == [{"secretRef": {"name": "data-collection-secrets"}}]
        assert {"name": "CRYPTOETL_SYMBOLS", "value": "BTC,ETH"} in container["env"]
        assert pod["metadata"]["name"].startswith(task.task_id.replace("_", "-"))
        assert task.on_finish_action.value == "delete_succeeded_pod"
        assert task.startup_timeout_seconds == settings.startup_timeout_seconds


def test_sentiment_pod_gets_its_own_image_and_memory(k8s_dags):
    task, check = k8s_dags["news_sentiment"].tasks
    assert render_pod(check, DAY[0])["spec"]["containers"][0]["image"] == Settings.from_env({}).image
    container = render_pod(task, DAY[0])["spec"]["containers"][0]
    assert container["image"].endswith(f"-sentiment:{__version__}")
    assert container["resources"]["limits"]["memory"] == RESOURCE_PROFILES["sentiment"].memory_limit
    threads = {e["name"]: e["value"] for e in container["env"]}["CRYPTOETL_TORCH_THREADS"]
    assert threads == RESOURCE_PROFILES["sentiment"].cpu_request  # torch sized to the requested CPUs
    with pytest.raises(ConfigError, match="pinned tag"):
        Settings.from_env({"CRYPTOETL_SENTIMENT_IMAGE": "ghcr.io/cryptoetl/cryptoetl-sentiment:latest"})
    pinned = Settings.from_env({"CRYPTOETL_SENTIMENT_IMAGE": "registry.example/sentiment:2026.11.1"})
    assert pinned.image_for("sentiment") == "registry.example/sentiment:2026.11.1"


def test_no_secret_reaches_pod_arguments_or_env(k8s_dags, monkeypatch):
    monkeypatch.setenv("COINGECKO_API_KEY", "CG-very-secret")
    monkeypatch.setenv("CRYPTOETL_WAREHOUSE_URL", "mysql://u:hunter2@db/x")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    for dag in bag.dags.values():
        rendered = json.dumps(render_pod(dag.tasks[0], DAY[0]))
        assert "very-secret" not in rendered and "hunter2" not in rendered


def test_validator_rejects_a_broken_pod(k8s_dags):
    pod = render_pod(next(iter(k8s_dags.values())).tasks[0], DAY[0])
    pod["spec"]["containers"][0]["resources"]["requests"] = "lots"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
