"""The deadline alert's callback: a DAG run that is late says so without anyone watching.

Airflow's triggerer awaits ``run_late`` when a run passes its ``DeadlineAlert`` (dag_factory.py).
For a run that had a chance to be on time (not a backfill, queued before its deadline), it logs an
error (the triggerer's log, where alerting on log lines picks it up) and, when
``CRYPTOETL_ALERT_WEBHOOK`` is set, posts a JSON message there (Slack, Teams and most chat tools
accept ``{"text": ...}`` on an incoming webhook).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.request
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)
WEBHOOK = "CRYPTOETL_ALERT_WEBHOOK"


def _when(value: Any) -> datetime | None:
    """An aware datetime from what the context carries: a datetime (the deadline, through Airflow's
    serde) or an ISO string (the run, as JSON)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def message(dag_id: str, grace: str, context: Any = None) -> tuple[str, bool]:
    """(the alert's text, whether to raise it). A run queued after its deadline (a backfill or a
    catch-up of old days) was late before it started: that is logged, not alerted."""
    context = context if isinstance(context, dict) else {}
    run = context.get("dag_run") or {}
    deadline = _when((context.get("deadline") or {}).get("deadline_time"))
    queued = _when(run.get("queued_at") or run.get("run_after"))
    alert = not (queued and deadline and queued > deadline) and run.get("run_type") != "backfill"
    return (f"cryptoetl: DAG {dag_id} run {run.get('run_id') or '?'} ({run.get('data_interval_start') or '?'} to "
            f"{run.get('data_interval_end') or '?'}) has not finished {grace} after its data interval ended: its "
            "data is late. See the Data health page and the run's logs."), alert


def _post(url: str, text: str) -> None:
    request = urllib.request.Request(url, data=json.dumps({"text": text}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - the operator's own webhook
        pass


async def run_late(dag_id: str, grace: str, context: Any = None, **_: Any) -> str:
    text, alert = message(dag_id, grace, context)
    if not alert:
        log.info("%s (a backfill or catch-up run: created after its deadline; not alerted)", text)
        return text
    log.error("%s", text)
    if url := os.environ.get(WEBHOOK):
        try:
            await asyncio.to_thread(_post, url, text)
        except OSError as exc:
            log.error("cryptoetl: the alert webhook failed: %s", exc)
    return text
