"""The deadline alert's callback: a DAG run that is late says so without anyone watching.

Airflow's triggerer awaits ``run_late`` when a run passes its ``DeadlineAlert`` (dag_factory.py). It
logs an error (the triggerer's log, where alerting on log lines picks it up) and, when
``CRYPTOETL_ALERT_WEBHOOK`` is set, posts a JSON message there (Slack, Teams and most chat tools
accept ``{"text": ...}`` on an incoming webhook).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.request
from typing import Any

log = logging.getLogger(__name__)
WEBHOOK = "CRYPTOETL_ALERT_WEBHOOK"


def message(dag_id: str, deadline: str, context: Any = None) -> str:
    run = (context or {}).get("dag_run") if isinstance(context, dict) else None
    run_id = (run or {}).get("run_id") if isinstance(run, dict) else getattr(run, "run_id", None)
    return (f"cryptoetl: DAG {dag_id} run {run_id or '?'} has not finished {deadline} after it was queued: "
            "its data is late. See the Data health page and the run's logs.")


def _post(url: str, text: str) -> None:
    request = urllib.request.Request(url, data=json.dumps({"text": text}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - the operator's own webhook
        pass


async def run_late(dag_id: str, deadline: str, context: Any = None, **_: Any) -> str:
    text = message(dag_id, deadline, context)
    log.error("%s", text)
    if url := os.environ.get(WEBHOOK):
        try:
            await asyncio.to_thread(_post, url, text)
        except OSError as exc:
            log.error("cryptoetl: the alert webhook failed: %s", exc)
    return text
