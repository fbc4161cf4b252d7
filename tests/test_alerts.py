"""The deadline alert's callback: a late scheduled run alerts (log + webhook); a backfill does not."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from cryptoetl.airflow import alerts


def _context(run_type: str, queued_at: str, deadline: str) -> dict:
    """The context Airflow 3.3's scheduler hands the callback (models/deadline.py handle_miss)."""
    return {"dag_run": {"run_id": f"{run_type}__2026-03-01T00:00:00+00:00", "run_type": run_type,
                        "queued_at": queued_at, "data_interval_start": "2026-03-01T00:00:00Z",
                        "data_interval_end": "2026-03-02T00:00:00Z"},
            "deadline": {"id": "x", "deadline_time": deadline}}


def test_a_late_scheduled_run_alerts_and_posts_to_the_webhook(monkeypatch, caplog):
    posted: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(alerts.WEBHOOK, f"http://127.0.0.1:{server.server_port}/hook")
    try:
        text = asyncio.run(alerts.run_late("prices_coingecko", "3:00:00", context=_context(
            "scheduled", "2026-03-02T00:00:05Z", "2026-03-02T03:00:00Z")))
    finally:
        server.shutdown()
    assert "prices_coingecko" in text and "2026-03-01T00:00:00Z to 2026-03-02T00:00:00Z" in text
    assert posted == [{"text": text}]
    assert any(r.levelname == "ERROR" and "late" in r.getMessage() for r in caplog.records)


def test_a_backfill_or_catch_up_run_created_after_its_deadline_is_logged_not_alerted(monkeypatch, caplog):
    monkeypatch.setenv(alerts.WEBHOOK, "http://127.0.0.1:9/unreachable")  # would raise if it were called
    for context in (_context("backfill", "2026-03-02T00:00:05Z", "2026-03-02T03:00:00Z"),
                    _context("scheduled", "2026-05-01T00:00:00Z", "2026-03-02T03:00:00Z")):
        assert alerts.message("prices_coingecko", "3:00:00", context)[1] is False
        asyncio.run(alerts.run_late("prices_coingecko", "3:00:00", context=context))
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_the_deadline_as_airflow_hands_it_over_is_compared_as_a_time():
    """The scheduler passes the deadline through Airflow's serde (a datetime, str() with a space) and
    the run as JSON (ISO with a T): queued before its deadline means alert."""
    from datetime import UTC, datetime

    from airflow.sdk import serde

    deadline = serde.deserialize(serde.serialize(datetime(2026, 3, 2, 3, 0, tzinfo=UTC)))
    context = _context("scheduled", "2026-03-02T00:00:05.123456Z", "")
    context["deadline"]["deadline_time"] = deadline
    assert alerts.message("prices_coingecko", "3:00:00", context)[1] is True
    context["dag_run"]["queued_at"] = "2026-03-02T04:00:00Z"  # a run queued after its deadline: late by design
    assert alerts.message("prices_coingecko", "3:00:00", context)[1] is False
