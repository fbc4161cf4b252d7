"""Derived work planned by range (airflow/planning.py): a history load is rebuilt once, when it is over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from cryptoetl.airflow import planning
from cryptoetl.config import ConfigError
from cryptoetl.intervals import Interval
from cryptoetl.steps import get_step

H = timedelta(hours=1)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def day(k: int) -> Interval:
    return Interval(T0 + timedelta(days=k), T0 + timedelta(days=k + 1))


def event(table: str, intervals, history=(), dag="prices_coingecko", run="backfill__2026-03-01", sent=None):
    return SimpleNamespace(asset=SimpleNamespace(name=table), source_dag_id=dag, source_run_id=run, timestamp=sent,
                           extra={"intervals": [str(iv) for iv in intervals], "history": [str(iv) for iv in history]})


class FakeTi:
    """``get_dr_count`` over a fixed set of active runs {dag_id: {run_id, ...}}; the task's start."""

    def __init__(self, active: dict[str, set[str]], start_date: datetime | None = None):
        self.active = active
        self.calls = 0
        self.start_date = start_date

    def get_dr_count(self, dag_id, run_ids=None, states=None, logical_dates=None):
        self.calls += 1
        runs = self.active.get(dag_id, set())
        return len(runs if run_ids is None else runs & set(run_ids))


@pytest.fixture
def variables(monkeypatch):
    store: dict[str, list[Interval]] = {}
    monkeypatch.setattr(planning, "read_pending", lambda step: list(store.get(step.dag_id, [])))
    monkeypatch.setattr(planning, "write_pending",
                        lambda step, ivs: store.__setitem__(step.dag_id, planning.merge(ivs)))
    monkeypatch.setattr(planning, "read_rebuilt", lambda step: store.get(f"rebuilt {step.dag_id}"))
    monkeypatch.setattr(planning, "write_rebuilt", lambda step, rebuilt: store.__setitem__(f"rebuilt {step.dag_id}",
                                                                                           rebuilt))
    return store


def test_plan_holds_history_back_while_the_upstream_is_busy_and_rebuilds_the_union_once():
    busy = planning.plan([], [day(0)], [], lambda: True)
    assert busy.run == [] and busy.pending == [day(0)]
    # a scheduled hour's increment is never held back, even while a backfill runs
    hour = Interval(day(5).start, day(5).start + H)
    mixed = planning.plan([hour], [day(1)], busy.pending, lambda: True)
    assert mixed.run == [hour] and mixed.pending == [Interval(day(0).start, day(1).end)]
    quiet = planning.plan([], [day(2)], mixed.pending, lambda: False)
    assert quiet.run == [Interval(day(0).start, day(2).end)] and quiet.pending == []
    assert quiet.history == quiet.run  # marked as history in this run's own event


def test_plan_asks_about_the_upstream_only_when_something_waits():
    asked = []
    result = planning.plan([day(0)], [], [], lambda: asked.append(1) or True)
    assert result.run == [day(0)] and asked == []


def test_split_events_extends_each_input_by_its_lookahead_and_keeps_the_history_marks():
    technical = get_step("technical")
    now, history, sources = planning.split_events(
        {"p": [event("price_data_real", [day(0), day(1)], history=[day(1)]),
               event("price_data_real", [day(3)], run="scheduled__x", dag="prices_coingecko_hourly")]}, technical)
    reach = timedelta(hours=technical.lookahead_for("price_data_real"))
    assert now == [Interval(day(0).start, day(0).end + reach), Interval(day(3).start, day(3).end + reach)]
    assert history == [Interval(day(1).start, day(1).end + reach)]
    assert sources == {"prices_coingecko": {"backfill__2026-03-01"}, "prices_coingecko_hourly": {"scheduled__x"}}
    with pytest.raises(ConfigError, match="carries no extra"):
        planning.split_events({"p": [SimpleNamespace(asset=None, source_dag_id="x", extra={})]}, technical)


def test_upstream_dags_are_transitive():
    assert set(planning.upstream_dags("technical")) == {"prices_coingecko", "prices_coingecko_hourly"}
    features = set(planning.upstream_dags("features"))
    # the prices behind the indicators and the news behind the sentiment scores count too
    assert {"technical_indicators", "prices_coingecko", "macro_fred", "news_sentiment", "news_guardian"} <= features
    assert "ml_features" not in features and "data_health" not in features


def test_upstream_busy_ignores_the_runs_that_sent_the_events():
    step = get_step("technical")
    own = {"prices_coingecko": {"backfill__a"}}
    assert not planning.upstream_busy(FakeTi({"prices_coingecko": {"backfill__a"}}), step, own)
    assert planning.upstream_busy(FakeTi({"prices_coingecko": {"backfill__a", "backfill__b"}}), step, own)
    assert planning.upstream_busy(FakeTi({"prices_coingecko_hourly": {"scheduled__h"}}), step, own)


def test_is_history_run():
    started = T0 + timedelta(days=3)
    run = SimpleNamespace(run_type="scheduled", run_id="scheduled__x", start_date=started)
    assert not planning.is_history_run({"dag_run": run, "data_interval_end": started - H})
    assert planning.is_history_run({"dag_run": run, "data_interval_end": started - timedelta(days=1)})  # catch-up
    backfill = SimpleNamespace(run_type="backfill", run_id="backfill__x", start_date=started)
    assert planning.is_history_run({"dag_run": backfill, "data_interval_end": started})


def test_a_backfill_defers_then_the_last_event_rebuilds_everything_once(variables):
    """Three daily price runs of one backfill: the first two find the third still queued."""
    technical = get_step("technical")
    reach = technical.lookahead_for("price_data_real")
    runs = {f"backfill__{k}" for k in range(3)}
    plans = []
    for k in range(3):
        ti = FakeTi({"prices_coingecko": set(runs)})
        context = {"ti": ti, "triggering_asset_events": {
            "p": [event("price_data_real", [day(k)], history=[day(k)], run=f"backfill__{k}")]}}
        plans.append(planning.plan_run(context, technical, None))
        runs.discard(f"backfill__{k}")
    assert [p.run for p in plans[:2]] == [[], []]
    assert variables["technical_indicators"] == [Interval(day(0).start, day(2).end + timedelta(hours=reach))]
    assert plans[2].run == [Interval(day(0).start, day(2).end + timedelta(hours=reach))]  # one rebuild of the union
    assert plans[2].history == plans[2].run
    planning.finish(technical, plans[2])
    assert variables["technical_indicators"] == []


def test_a_failed_rebuild_leaves_its_work_pending_and_a_timed_run_drains_it(variables):
    features = get_step("features")
    hour = Interval(day(4).start, day(4).start + H)
    context = {"ti": FakeTi({}), "triggering_asset_events": {
        "t": [event("technical_indicators", [hour], dag="technical_indicators", run="asset_triggered__1")]}}
    first = planning.plan_run(context, features, None)
    assert first.run == [hour] and variables["ml_features"] == [hour]  # written before the rebuild
    # the rebuild fails (no finish): the next timed run of the DAG rebuilds it with its own day
    ti = FakeTi({"macro_fred": {"scheduled__busy"}})
    timed = planning.plan_run({"ti": ti, "dag_run": SimpleNamespace(run_type="scheduled", run_id="scheduled__d",
                                                                   start_date=day(4).end),
                               "data_interval_end": day(4).end}, features, [day(3)])
    assert timed.run == [Interval(day(3).start, day(4).start + H)] and ti.calls == 0  # a timed run never waits


def test_a_backfill_of_the_derived_dag_touches_no_pending_work(variables):
    technical = get_step("technical")
    variables["technical_indicators"] = [day(9)]
    context = {"ti": FakeTi({}), "dag_run": SimpleNamespace(run_type="backfill", run_id="backfill__d",
                                                          start_date=day(20).start)}
    result = planning.plan_run(context, technical, [day(1)])
    planning.finish(technical, result)
    assert result.run == [day(1)] and variables["technical_indicators"] == [day(9)]


def test_an_event_the_last_history_rebuild_already_read_rebuilds_nothing(variables):
    """The load's last price day sends its event just before the rebuild of the whole load starts (which
    reads that day too): the run it queues drops it. An event sent after that start, or reaching past
    what was rebuilt, is rebuilt; so is a regular increment."""
    technical = get_step("technical")
    reach = timedelta(hours=technical.lookahead_for("price_data_real"))
    started = day(20).start
    ti = FakeTi({}, start_date=started)
    whole = planning.plan_run({"ti": ti, "triggering_asset_events": {"p": [
        event("price_data_real", [day(0)], history=[day(0)], sent=started - timedelta(seconds=30))]}}, technical, None)
    assert whole.run == [Interval(day(0).start, day(0).end + reach)] and whole.started == started
    planning.finish(technical, whole)
    assert variables["rebuilt technical_indicators"].intervals == whole.run

    def rerun(intervals, history, sent):
        context = {"ti": FakeTi({}, start_date=started + timedelta(minutes=1)), "triggering_asset_events": {
            "p": [event("price_data_real", intervals, history=history, run="backfill__late", sent=sent)]}}
        result = planning.plan_run(context, technical, None)
        planning.finish(technical, result)
        return result

    assert rerun([day(0)], [day(0)], started - timedelta(seconds=4)).run == []  # read by the rebuild: skipped
    assert rerun([day(0)], [day(0)], started + timedelta(seconds=4)).run == [whole.run[0]]  # sent after it started
    assert rerun([day(0)], [], started - timedelta(seconds=4)).run == [whole.run[0]]  # a regular increment
    before = Interval(day(0).start - timedelta(days=1), day(0).start)
    assert rerun([before], [before], started - timedelta(seconds=4)).run == [before.extended(int(reach / H))]
    assert planning.Rebuilt(started, whole.run).covers(Interval(day(0).start, started + reach), started - H)
    assert not planning.Rebuilt(started, whole.run).covers(Interval(day(0).start, started + reach), None)
    # the worker's and the API server's clocks may differ a little: just before the start is not before
    assert not planning.Rebuilt(started, whole.run).covers(whole.run[0], started - planning.CLOCK_SKEW / 2)
