"""The source registry: a toy source, registered by its spec alone, reaches every derived list.

This is docs/CONTRIBUTING.md's promise: adding a source means its module with a ``SPEC`` (here:
this test module plays the source module, the loader and the sandbox module at once), its DAG file
and docs, and nothing else. Each derived list is read here exactly as the code that uses it reads it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from helpers import utc

from cryptoetl.airflow import local
from cryptoetl.airflow.dag_factory import source_dag
from cryptoetl.airflow.operators import pod_env_names, secret_keys
from cryptoetl.config import ConfigError, Settings
from cryptoetl.intervals import Interval
from cryptoetl.sandbox.common import Route
from cryptoetl.sandbox.server import SandboxServer
from cryptoetl.sources import registry
from cryptoetl.sources.http import HttpSource
from cryptoetl.sources.spec import Plan, Pool, SourceSpec, SourceStep
from cryptoetl.step import StepContext
from cryptoetl.steps import get_step, steps

REPO = Path(__file__).resolve().parents[1]
TOY_KEY = "toy-sandbox-key"

TOY = SourceSpec(
    name="toy",
    title="Toy API (a test's)",
    plans={"free": Plan("https://toy.invalid/api", 30, needs_key=True), "pro": Plan("https://pro.toy.invalid", 300)},
    steps=(SourceStep(step="toy_items", run="test_registry:run_toy", writes="toy_items", dag_id="toy_items_dag",
                      task_id="load_toy_items", description="Toy items"),),
    sandbox="test_registry:ToyApi",
    sandbox_path="/toy/v1",
    sandbox_env={"TOY_API_KEY": TOY_KEY},
    pool=Pool(3, "Concurrent toy tasks."),
    key_use="the toy step reads the toy API",
)


class ToyApi:
    """The toy's stand-in in the sandbox. SYNTHETIC."""

    def __init__(self, server):
        self.server = server

    def routes(self) -> list[Route]:
        return [Route("GET", r"^/toy/v1/items$", self.items)]

    def items(self, query):
        if query.get("key") != TOY_KEY:
            return 401, {"error": "bad key"}
        return 200, {"items": [1, 2, 3]}


class ToyClient(HttpSource):
    spec = TOY

    def items(self) -> list:
        body, _synthetic = self.get_json("/items", {"key": self.api_key})
        return body["items"]


def run_toy(ctx: StepContext, interval: Interval) -> int:
    return len(ctx.client(ToyClient).items())


@pytest.fixture
def toy():
    with registry.registered(TOY) as spec:
        yield spec


def test_a_registered_source_reaches_every_derived_list(toy):
    assert {"TOY_API_PLAN", "TOY_BASE_URL", "TOY_RATE_PER_MINUTE"} <= set(pod_env_names())
    assert "TOY_API_KEY" not in pod_env_names()  # keys only through the Secret
    assert "TOY_API_KEY" in secret_keys()
    assert registry.pools()["toy"] == {"slots": 3, "description": "Concurrent toy tasks.", "include_deferred": False}
    assert "toy_items_dag" in local.backfill_dags() and "toy_items_dag" in local.dag_ids()
    assert local.sandbox_env()["TOY_API_KEY"] == TOY_KEY
    step = get_step("toy_items")
    assert (step.source, step.pool, step.task_id, step.writes) == ("toy", "toy", "load_toy_items", "toy_items")
    dag = source_dag(source="toy", cron="0 0 * * *", doc_md="toy", settings=Settings())
    task, check = dag.tasks
    assert (dag.dag_id, task.task_id, task.pool, dag.catchup) == ("toy_items_dag", "load_toy_items", "toy", True)
    assert (check.task_id, check.verb, check.pool) == ("check_toy_items", "check", "default_pool")


def test_the_toy_runs_end_to_end_against_its_sandbox_route(toy, sqlite_engine):
    with SandboxServer(port=0) as server:
        url = server.urls()["toy"]
        assert url.endswith("/toy/v1")
        assert requests.get(f"{url}/items", params={"key": TOY_KEY}, timeout=10).json() == {"items": [1, 2, 3]}
        env = {"TOY_BASE_URL": url, **local.sandbox_env()}
        ctx = StepContext(settings=Settings(source_env=env), engine=sqlite_engine)
        assert get_step("toy_items").execute(ctx, Interval(utc(2026, 1, 1), utc(2026, 1, 2))) == 3
        # The key is checked once, when the client is built, with a message naming the setting.
        no_key = StepContext(settings=Settings(source_env={"TOY_BASE_URL": url}), engine=sqlite_engine)
        with pytest.raises(ConfigError, match="TOY_API_KEY is not set .*the toy step reads the toy API"):
            get_step("toy_items").execute(no_key, Interval(utc(2026, 1, 1), utc(2026, 1, 2)))
        # A plan that needs no key builds without one; an unknown plan is named.
        assert ToyClient.from_settings(Settings(source_env={"TOY_API_PLAN": "pro"})).base_url == "https://pro.toy.invalid"
        with pytest.raises(ConfigError, match="TOY_API_PLAN='gold': use one of free, pro"):
            ToyClient.from_settings(Settings(source_env={"TOY_API_PLAN": "gold"}))


def test_unregistering_removes_it_again():
    with registry.registered(TOY):
        assert "toy_items" in steps()
    assert "toy_items" not in steps() and "toy" not in registry.pools()


def test_bad_source_settings_fail_with_their_name():
    for env, message in (({"FRED_RATE_PER_MINUTE": "0"}, "FRED_RATE_PER_MINUTE must be > 0"),
                         ({"COINGECKO_RATE_PER_MINUTE": "0"}, "COINGECKO_RATE_PER_MINUTE must be > 0"),
                         ({"ETHERSCAN_RATE_PER_MINUTE": "fast"}, "is not a number"),
                         ({"COINGECKO_API_PLAN": "gold"}, "COINGECKO_API_PLAN='gold'")):
        with pytest.raises(ConfigError, match=message):
            registry.check_settings(Settings.from_env(env))


def test_committed_files_equal_what_the_registry_derives():
    """include/pools.json and the Secret template are generated from / checked against the specs."""
    pools = json.loads((REPO / "include" / "pools.json").read_text())
    assert pools == registry.pools(), "regenerate: python -m cryptoetl pools > include/pools.json"
    printed = subprocess.run([sys.executable, "-m", "cryptoetl", "pools"], capture_output=True, text=True,
                             check=True, timeout=120).stdout
    assert json.loads(printed) == pools


def test_every_dag_file_is_named_after_its_dag_and_every_step_has_one():
    files = {path.stem for path in (REPO / "dags").glob("*.py")}
    assert files == {step.dag_id for step in steps().values()}
