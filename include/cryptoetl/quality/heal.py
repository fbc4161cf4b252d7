"""Self-healing: the health check creates the backfills that refill its holes, through Airflow's
REST API (``POST /api/v2/backfills``), within bounds, and records what it did.

Bounds, so that healing can never become a loop:
- at most ``CRYPTOETL_HEAL_MAX_INTERVALS`` daily intervals per health run (a longer hole is
  refilled over several runs, oldest days first);
- no second backfill of a DAG while one of ours for it still runs (Airflow itself refuses a
  second running backfill of a DAG: 409);
- a hole refilled before waits twice as long before each further attempt (1 h, 2 h, 4 h, ...;
  ``CRYPTOETL_HEAL_BACKOFF_MINUTES`` sets the first wait), and
  after ``MAX_ATTEMPTS`` attempts it is left to a person (action ``gave_up``, shown on the page and
  failing the health run), so a source that keeps failing is not called again and again;
- derived tables are not refilled where their input has a hole, or where an input was backfilled
  within the first backoff: the refilled input's asset events rebuild them;
- what the source can no longer serve (older than the CoinGecko plan's history) is reported only.

A refill of prices passes ``{"options": ["refetch"]}`` as the runs' conf: the landing store may
hold an empty answer for those days, which only a new call can replace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from cryptoetl.quality.health import DAY, Hole
from cryptoetl.step import StepContext
from cryptoetl.steps import steps
from cryptoetl.warehouse import quality

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # 1 + 2 + ... + 64 h of backoff (the default first wait): a source down for five days is refilled
FIRST_BACKOFF = timedelta(hours=1)  # CRYPTOETL_HEAL_BACKOFF_MINUTES


class AirflowApiError(RuntimeError):
    """Airflow's REST API refused a request or could not be reached."""


class AirflowApi:
    """The two calls healing needs, as the account in ``CRYPTOETL_AIRFLOW_API_URL``
    (``http://user:password@host:port``): a JWT from ``/auth/token``, then ``/api/v2/backfills``."""

    def __init__(self, url: str, session: requests.Session | None = None, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if not parts.scheme or not parts.hostname:
            raise AirflowApiError("CRYPTOETL_AIRFLOW_API_URL must look like http://user:password@host:port")
        self._user, self._password = unquote(parts.username or ""), unquote(parts.password or "")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._session = session or requests.Session()
        self._timeout = timeout
        self._token: str | None = None

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if self._token is None:
            answer = self._session.post(f"{self.base}/auth/token", json={"username": self._user,
                                        "password": self._password}, timeout=self._timeout)
            if answer.status_code not in (200, 201):
                raise AirflowApiError(f"Airflow API {self.base}/auth/token: HTTP {answer.status_code}: "
                                      f"{answer.text[:200]}")
            self._token = answer.json()["access_token"]
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            return self._session.request(method, f"{self.base}{path}", headers=headers, timeout=self._timeout,
                                         **kwargs)
        except requests.RequestException as exc:
            raise AirflowApiError(f"Airflow API {self.base}{path}: {exc}") from None

    def create_backfill(self, dag_id: str, from_date: str, to_date: str, conf: dict | None) -> dict | None:
        """The backfill created, or None when the DAG already has a running backfill (409)."""
        answer = self._request("POST", "/api/v2/backfills", json={
            "dag_id": dag_id, "from_date": f"{from_date}T00:00:00Z", "to_date": f"{to_date}T00:00:00Z",
            "reprocess_behavior": "completed", "max_active_runs": 2, "dag_run_conf": conf or {}})
        if answer.status_code == 409:
            return None
        if answer.status_code not in (200, 201):
            raise AirflowApiError(f"POST /api/v2/backfills {dag_id}: HTTP {answer.status_code}: {answer.text[:300]}")
        return answer.json()

    def running(self, dag_id: str) -> set[int]:
        """Ids of the DAG's backfills that have not completed."""
        answer = self._request("GET", "/api/v2/backfills", params={"dag_id": dag_id, "limit": 100, "order_by": "-id"})
        if answer.status_code != 200:
            raise AirflowApiError(f"GET /api/v2/backfills {dag_id}: HTTP {answer.status_code}: {answer.text[:300]}")
        return {item["id"] for item in answer.json().get("backfills", []) if not item.get("completed_at")}


@dataclass(frozen=True)
class Decision:
    hole: Hole
    action: str  # backfill | wait | running | gave_up | follows | cannot | budget
    detail: str = ""
    backfill_id: int | None = None


def _attempts(history: list[dict], hole: Hole) -> list[dict]:
    """Earlier backfills of the hole's DAG that covered any of its days, newest first."""
    return [a for a in history if a["dag_id"] == hole.dag_id and a["action"] == "backfill"
            and a["interval_start"] < hole.end and a["interval_end"] > hole.start]


def _upstream_dags(step: str) -> set[str]:
    """The DAGs whose asset events (directly or through another derived step) rebuild ``step``'s table."""
    out: set[str] = set()
    for table in steps()[step].triggered_by:
        for other in steps().values():
            if other.writes == table and other.name != step:
                out |= {other.dag_id} | _upstream_dags(other.name)
    return out


def _refilled_upstream(hole: Hole, history: list[dict], now: datetime, recent: timedelta) -> bool:
    """An input of a derived table was backfilled over the hole's days lately: its asset events are
    rebuilding it (or just did)."""
    upstream = _upstream_dags(hole.step)
    return any(a["action"] == "backfill" and a["dag_id"] in upstream and a["created_at"] > now - recent
               and a["interval_start"] < hole.end and a["interval_end"] > hole.start for a in history)


# The inputs whose rows a derived table's rows stand on: a hole there is a hole here too (macro,
# on-chain or sentiment holes leave feature rows in place, with NULLs).
ROW_INPUTS = {"technical": ("price_data_real",), "features": ("technical_indicators", "price_data_real"),
              "sentiment": ("crypto_news",)}


def _upstream_hole(hole: Hole, found: list[Hole]) -> bool:
    """A derived table's hole inside a hole of an input its rows stand on."""
    inputs = ROW_INPUTS.get(hole.step, ())
    return any(other is not hole and other.table.split(":")[0] in inputs and other.start < hole.end
               and other.end > hole.start for other in found)


def decide(found: list[Hole], history: list[dict], running: dict[str, set[int]], now: datetime,
           budget: int, first_backoff: timedelta = FIRST_BACKOFF) -> list[Decision]:
    """What to do about each hole (pure: no call, no write)."""
    out: list[Decision] = []
    busy: set[str] = {dag for dag, ids in running.items() if ids}
    for hole in sorted(found, key=lambda h: (h.start, h.table)):
        if not hole.fillable:
            out.append(Decision(hole, "cannot", hole.why))
            continue
        if steps()[hole.step].triggered_by and (_upstream_hole(hole, found)
                                                or _refilled_upstream(hole, history, now, first_backoff)):
            out.append(Decision(hole, "follows", "its input has a hole here, or was just refilled: that rebuilds it"))
            continue
        earlier = _attempts(history, hole)
        if hole.dag_id in busy or any(a["backfill_id"] in running.get(hole.dag_id, ()) for a in earlier):
            out.append(Decision(hole, "running", f"a backfill of {hole.dag_id} is running"))
            continue
        if len(earlier) >= MAX_ATTEMPTS:
            out.append(Decision(hole, "gave_up", f"{len(earlier)} backfills did not fill it: the source keeps "
                                                 "failing or has nothing; needs a person"))
            continue
        wait = first_backoff * 2 ** (len(earlier) - 1) if earlier else timedelta(0)
        if earlier and now < earlier[0]["created_at"] + wait:
            out.append(Decision(hole, "wait", f"attempt {len(earlier) + 1} not before "
                                              f"{earlier[0]['created_at'] + wait:%Y-%m-%d %H:%M} UTC"))
            continue
        days = int((hole.end - hole.start) / DAY)
        if budget <= 0:
            out.append(Decision(hole, "budget", "this run's backfill budget is spent; the next run goes on"))
            continue
        if days > budget:
            hole = replace(hole, end=hole.start + DAY * budget)
        budget -= min(days, budget)
        busy.add(hole.dag_id)
        out.append(Decision(hole, "backfill", f"attempt {len(earlier) + 1}"))
    return out


def heal(ctx: StepContext, found: list[Hole], api: AirflowApi | None, now: datetime) -> list[Decision]:
    """Decide, create the backfills (when ``api`` is given), and record every backfill and give-up."""
    history = quality.actions(ctx.engine, since=now - timedelta(days=ctx.settings.health_days + 7))
    dags = {hole.dag_id for hole in found if hole.fillable}
    running = {dag: api.running(dag) for dag in sorted(dags)} if api is not None else {}
    decisions = decide(found, history, running, now, ctx.settings.heal_max_intervals,
                       timedelta(minutes=ctx.settings.heal_backoff_minutes))
    gave_up_before = {(a["dag_id"], a["interval_start"]) for a in history if a["action"] == "gave_up"}
    out = []
    for d in decisions:
        hole = d.hole
        if d.action == "backfill" and api is not None:
            d = _create(api, d)
        if d.action == "backfill" and d.backfill_id is not None or \
                d.action in ("gave_up", "error") and (hole.dag_id, hole.start) not in gave_up_before:
            with ctx.engine.begin() as conn:  # each on its own: a later failure keeps what was done
                quality.record_action(conn, now=now, dag_id=hole.dag_id, table=hole.table, start=hole.start,
                                      end=hole.end, action=d.action, backfill_id=d.backfill_id, detail=d.detail)
        out.append(d)
    return out


def _create(api: AirflowApi, d: Decision) -> Decision:
    """Create the backfill of a decision; an API error is this hole's, not the run's."""
    hole = d.hole
    lo, hi = hole.backfill_dates()
    try:
        made = api.create_backfill(hole.dag_id, str(lo), str(hi), hole.conf())
    except AirflowApiError as exc:
        log.error("data_health: %s", exc)
        return Decision(hole, "error", str(exc))
    if made is None:
        return Decision(hole, "running", f"Airflow refused: {hole.dag_id} has a running backfill")
    return Decision(hole, "backfill", f"{d.detail}: {hole.command()}", backfill_id=int(made["id"]))


def api_from_settings(settings) -> AirflowApi | None:
    return AirflowApi(settings.airflow_api_url) if settings.airflow_api_url and settings.heal_max_intervals else None


def now_utc(ctx: StepContext) -> datetime:
    return datetime.fromtimestamp(ctx.clock(), tz=UTC)
