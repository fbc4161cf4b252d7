"""The incident through the real Airflow scheduler (``make incident``; ``make test-scheduler``, CI).

CoinGecko (the sandbox, SYNTHETIC data) serves nothing for five of ten days while the prices DAG is
backfilled through ``airflow standalone``: those five runs fail their quality gate (and no other).
The first ``data_health`` run reports the hole and creates a backfill through Airflow's REST API (it
fails: the source is still down). CoinGecko recovers; the next ``data_health`` run backfills again,
and prices, indicators and features end byte-identical to an uninterrupted load through the CLI.
Minutes of wall time: deselected from ``make test``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta

import pytest

pytestmark = [pytest.mark.scheduler, pytest.mark.airflow]


def test_five_lost_days_are_found_refilled_and_identical_through_the_scheduler(tmp_path):
    home = tmp_path / "incident"
    code = subprocess.run([sys.executable, "-m", "cryptoetl.airflow.local_incident", "--home", str(home),
                           "--days", "10"], check=False).returncode
    result = json.loads((home / "result.json").read_text())
    first, last = (date.fromisoformat(d) for d in result["lost"])
    lost = [str(first + timedelta(days=i)) for i in range((last - first).days + 1)]
    assert len(lost) == 5 and result["failed_runs"] == lost  # every lost day's run failed, and no other
    backfills = [a for a in result["first_health_run"] if a["action"] == "backfill"]
    assert [(a["dag_id"], a["from"]) for a in backfills] == [("prices_coingecko", lost[0])]
    assert backfills[0]["to"] >= lost[-1]  # the whole hole in one bounded backfill
    again = [a for a in result["second_health_run"] if a["dag_id"] == "prices_coingecko"]
    assert [a["action"] for a in again] == ["backfill"] and again[0]["backfill_id"] != backfills[0]["backfill_id"]
    assert result["identical"] == {"price_data_real": True, "technical_indicators": True,
                                   "ml_features_materialized": True}
    assert all(result["rows"].values()) and code == 0
