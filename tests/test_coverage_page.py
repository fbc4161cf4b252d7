"""The data-health page: coverage queries (SQLite and MariaDB), the page rendered by its FastAPI app on a
seeded warehouse, Airflow's auth in front of it, the plugin as Airflow loads it, and the page in a real
headless browser (Debian's ``chromium``: skipped only when it is missing outside CI).

The seeded warehouse (``seed``) is synthetic and has deliberate faults: a coin with a whole day of
prices missing (a failed quality check and a fill action point at it), a coin with some hours missing,
feature rows missing for a few hours, a day with no news, a stale news table, and hours of today that
are missing but not due yet (pending).

Regenerate the screenshot in docs/: ``.venv/bin/python tests/test_coverage_page.py docs/data-health-page.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import insert

from cryptoetl.quality import coverage
from cryptoetl.quality.health import fred_publishes_before
from cryptoetl.warehouse import schema

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))  # as Airflow puts its plugins folder on sys.path
import cryptoetl_health  # noqa: E402
import cryptoetl_health_page as page  # noqa: E402

NOW = datetime(2026, 12, 3, 16, 40, tzinfo=UTC)  # a Thursday
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Seed:
    """What ``seed`` writes: every assertion is derived from these fields."""

    coins: tuple[str, ...] = ("BTC", "ETH", "SOL")
    first: datetime = datetime(2026, 11, 28, 6)  # the first price hour of every coin (naive UTC)
    hole: tuple[str, date] = ("ETH", date(2026, 11, 30))  # no price (nor derived row) all day
    partial: tuple[str, date, range] = ("SOL", date(2026, 12, 1), range(5, 11))  # these hours missing
    features_gap: tuple[str, date, range] = ("BTC", date(2026, 11, 29), range(0, 4))  # ml_features only
    pending: tuple[str, date, range] = ("BTC", NOW.date(), range(3, 6))  # today: not due yet
    news_days: tuple[date, ...] = (date(2026, 11, 28), date(2026, 11, 30), date(2026, 12, 1))  # none on 11-29
    unscored: tuple[date, int] = (date(2026, 12, 1), 1)  # one article of that day has no score
    news_per_day: int = 3
    onchain: tuple[str, ...] = ("BTC", "ETH")
    onchain_last: date = date(2026, 12, 1)
    universe_first: date = date(2026, 11, 30)
    macro_first: date = date(2026, 11, 20)  # a value known on every day FRED publishes, from then to yesterday
    synthetic: bool = True
    failed_check: str = "coverage"
    backfill_id: int = 42
    now: datetime = field(default=NOW)

    def missing(self, symbol: str, hour: datetime, table: str) -> bool:
        day, h = hour.date(), hour.hour
        if (symbol, day) == self.hole:
            return True
        gaps = [self.partial, self.pending] + ([self.features_gap] if table == "ml_features_materialized" else [])
        return any(symbol == coin and day == on and h in hours for coin, on, hours in gaps)

    def hours(self):
        """Every hour that has ended by ``now``, from ``first`` on."""
        hour, last = self.first, self.now.replace(tzinfo=None, minute=0, second=0, microsecond=0)
        while hour < last:
            yield hour
            hour += HOUR


def _hourly_rows(s: Seed) -> dict[str, list[dict]]:
    source = "sandbox-synthetic" if s.synthetic else "coingecko"
    out: dict[str, list[dict]] = {t: [] for t in coverage.PRICE_FAMILY}
    counts = {f"sent_{m}_{k}_{w}_count": 0 for m in ("cryptobert", "finbert") for k in ("sym", "all")
              for w in ("24h", "7d")}
    for hour in s.hours():
        for symbol in s.coins:
            base = {"symbol": symbol, "time": hour}
            if not s.missing(symbol, hour, "price_data_real"):
                out["price_data_real"].append({**base, "price": 100.0, "source": source})
                out["technical_indicators"].append({**base, "close": 100.0})
            if not s.missing(symbol, hour, "ml_features_materialized"):
                out["ml_features_materialized"].append({**base, "price": 100.0, "is_synthetic": s.synthetic, **counts})
    return out


def _news_rows(s: Seed) -> tuple[list[dict], list[dict]]:
    news, scores = [], []
    for day in s.news_days:
        for i in range(s.news_per_day):
            at, article = datetime(day.year, day.month, day.day, 8 + i), f"{day}-{i}"
            news.append({"article_id": article, "published_at": at, "source": "guardian", "title": "t",
                         "url": f"https://example.org/{article}", "category": "crypto", "is_synthetic": s.synthetic})
            if day == s.unscored[0] and i < s.unscored[1]:
                continue
            for model in ("cryptobert", "finbert"):  # two scores per article: coverage counts articles
                scores.append({"article_id": article, "model_id": f"m/{model}", "model_revision": "r",
                               "model_key": model, "published_at": at, "label": "neutral", "score": 0.0,
                               "p_positive": 0.3, "p_negative": 0.3, "p_neutral": 0.4, "text_sha256": "0" * 64,
                               "is_synthetic": s.synthetic})
    return news, scores


def _daily_rows(s: Seed) -> dict[str, list[dict]]:
    sandbox = "-sandbox-synthetic" if s.synthetic else ""
    days = coverage.days(s.first.date(), s.now.date() + DAY)
    macro = [{"series_id": "DGS10", "observation_date": d - DAY, "realtime_start": d, "indicator_name": "10y",
              "value": 4.0, "known_at": datetime(d.year, d.month, d.day, 14), "known_at_rule": "lag+30h",
              "frequency": "daily", "units": "%", "source": "fred" + sandbox}
             for d in coverage.days(s.macro_first, s.now.date()) if fred_publishes_before(d)]
    onchain = [{"symbol": c, "date": d, "data_source": "blockchain.info" + sandbox, "is_synthetic": s.synthetic,
                "complete_at": datetime(d.year, d.month, d.day) + DAY + 6 * HOUR} for c in s.onchain for d in days
               if d <= s.onchain_last]
    universe = [{"known_at": datetime(d.year, d.month, d.day, 0, 5, i), "symbol": c, "snapshot_date": d,
                 "coingecko_id": c.lower(), "source": "sandbox-synthetic" if s.synthetic else "coingecko"}
                for d in days if d >= s.universe_first for i, c in enumerate(s.coins)]
    return {"macro_indicators": macro, "crypto_onchain_data": onchain, "universe_snapshots": universe}


def seed(engine, s: Seed = Seed()) -> Seed:
    """Write the seeded warehouse (see the module docstring) into ``engine``."""
    from cryptoetl.warehouse.quality import Result, record_action, record_results

    news, scores = _news_rows(s)
    tables = {**_hourly_rows(s), **_daily_rows(s), "crypto_news": news, "crypto_sentiment_data": scores}
    with engine.begin() as conn:
        for name, rows in tables.items():
            if rows:
                conn.execute(insert(schema.metadata.tables[name]), rows)
        hole_start = datetime.combine(s.hole[1], datetime.min.time(), UTC)
        record_action(conn, now=s.now - HOUR, dag_id="prices_coingecko", table="price_data_real", start=hole_start,
                      end=hole_start + DAY, action="backfill", backfill_id=s.backfill_id, detail=f"{s.hole[0]} missing")
        record_action(conn, now=s.now - 2 * HOUR, dag_id="onchain_etherscan", table="crypto_onchain_data",
                      start=hole_start, end=hole_start + DAY, action="gave_up", detail="3 backfills, still empty")
    hole_start = datetime.combine(s.hole[1], datetime.min.time(), UTC)
    record_results(engine, "price_data_real", hole_start, hole_start + DAY, [
        Result(s.failed_check, "fail", False, 1, 0, f"coins with history and no price in the interval: {s.hole[0]}"),
        Result("extreme_return", "warn", True, 0.01, 0.5)], now=s.now - 3 * HOUR)
    record_results(engine, "crypto_news:guardian", hole_start, hole_start + DAY, [
        Result("null_rate:summary", "warn", False, 0.4, 0.2, "4 of 10 rows have no summary")], now=s.now - 4 * HOUR)
    return s


# --- (a) the coverage queries, on SQLite and MariaDB -------------------------------------------------

WINDOW = (date(2026, 11, 27), NOW.date() + DAY)


def test_coin_days_counts_present_against_expected_hours(engine):
    s = seed(engine)
    cells = coverage.coin_days(engine, "price_data_real", *WINDOW, s.now)
    assert set(cells) == set(s.coins)
    symbol, day = s.hole
    assert (cells[symbol][day].present, cells[symbol][day].expected, cells[symbol][day].state) == (0, 24, "empty")
    symbol, day, hours = s.partial
    assert (cells[symbol][day].present, cells[symbol][day].state) == (24 - len(hours), "partial")
    first = s.first
    assert cells[symbol][first.date()].expected == 24 - first.hour  # expected from the first price on
    assert cells[symbol][first.date() - DAY].state == "none"  # before the coin's first price
    today = cells[symbol][s.now.date()]
    assert today.expected == s.now.hour == today.present and today.state == "full"  # hours that ended
    symbol, day, hours = s.pending  # today: short, but today's run is not due yet
    assert (cells[symbol][day].present, cells[symbol][day].expected) == (s.now.hour - len(hours), s.now.hour)
    assert cells[symbol][day].state == "pending"


def test_coin_days_of_a_derived_table_holds_it_to_the_price_hours(engine):
    s = seed(engine)
    cells = coverage.coin_days(engine, "ml_features_materialized", *WINDOW, s.now)
    symbol, day, hours = s.features_gap
    assert (cells[symbol][day].present, cells[symbol][day].expected) == (24 - len(hours), 24)
    assert cells[s.hole[0]][s.hole[1]].state == "empty"  # the price hole shows in the derived tables too
    with pytest.raises(ValueError, match="not hourly per coin"):
        coverage.coin_days(engine, "crypto_news", *WINDOW, s.now)


def test_table_days_sums_coins_and_measures_every_table(engine):
    s = seed(engine)
    cells = coverage.table_days(engine, *WINDOW, s.now)
    assert list(cells) == list(coverage.TABLES)
    hole = cells["price_data_real"][s.hole[1]]
    assert (hole.present, hole.expected, hole.state) == (24 * (len(s.coins) - 1), 24 * len(s.coins), "partial")
    news_gap = next(d for d in coverage.days(s.news_days[0], s.news_days[-1]) if d not in s.news_days)
    assert cells["crypto_news"][news_gap].state == "empty"
    assert cells["crypto_news"][s.news_days[0]].present == s.news_per_day
    scored = cells["crypto_sentiment_data"][s.unscored[0]]  # articles, not scores (two models each)
    assert (scored.present, scored.expected) == (s.news_per_day - s.unscored[1], s.news_per_day)
    macro = cells["macro_indicators"]
    assert {macro[d].state for d in macro if not fred_publishes_before(d)} == {"none"}  # weekends, holidays
    assert {macro[d].state for d in macro if fred_publishes_before(d) and d < s.now.date()} == {"full"}
    onchain = cells["crypto_onchain_data"]
    assert onchain[s.onchain_last].present == onchain[s.onchain_last].expected == len(s.onchain)
    assert onchain[s.now.date()].state == "none"  # today's totals cannot exist yet
    assert cells["universe_snapshots"][s.universe_first - DAY].state == "none"
    assert cells["universe_snapshots"][s.universe_first].present == len(s.coins)


def test_synthetic_tables_are_found_by_flag_and_source(engine):
    seed(engine)
    found = coverage.synthetic_tables(engine, *WINDOW)
    assert set(found) == set(coverage.TABLES)  # every table of the seed is synthetic


def test_real_data_is_not_called_synthetic(sqlite_engine):
    seed(sqlite_engine, Seed(synthetic=False))
    assert coverage.synthetic_tables(sqlite_engine, *WINDOW) == []


# --- (b) the page, rendered by the plugin's FastAPI app ----------------------------------------------

VOID = {"meta", "link", "br", "img", "input", "hr"}


class Doc(HTMLParser):
    """Every element with its attributes, its text and its ancestors."""

    def __init__(self, text: str):
        super().__init__()
        self.stack: list[dict] = []
        self.elements: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, **{k: v or "" for k, v in attrs}, "parents": list(self.stack), "text": ""}
        self.elements.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop()["tag"] != tag:
            pass

    def handle_data(self, data):
        for element in self.stack:
            element["text"] += data

    def find(self, tag: str, **attrs) -> list[dict]:
        return [e for e in self.elements if e["tag"] == tag and all(e.get(k.replace("_", "-")) == v
                                                                  for k, v in attrs.items())]

    def cells(self, heat: str, key: str, value: str) -> dict[str, dict]:
        """{day: td} of one row of heatmap ``heat`` (tables | coins)."""
        def within(e: dict) -> bool:
            return (any(p.get(key) == value for p in e["parents"])
                    and any(heat in p.get("class", "").split() for p in e["parents"]))

        return {e["data-day"]: e for e in self.find("td") if "c" in e.get("class", "").split() and within(e)}


@pytest.fixture
def client(sqlite_engine):
    from fastapi.testclient import TestClient

    seed(sqlite_engine)
    app = page.create_app(warehouse=lambda: page.Warehouse(sqlite_engine), clock=lambda: NOW)
    app.dependency_overrides[page.airflow_auth()] = lambda: None  # Airflow's auth: tested below, in Airflow
    return TestClient(app)


def test_the_page_shows_the_hole_the_failed_check_freshness_and_the_fill(client):
    s = Seed()
    doc = Doc(client.get("/", params={"days": 7}).raise_for_status().text)
    hole = doc.cells("coins", "data-symbol", s.hole[0])[s.hole[1].isoformat()]
    assert (hole["data-state"], hole["data-present"], hole["data-expected"]) == ("empty", "0", "24")
    assert "empty" in hole["class"] and s.hole[1].isoformat() in hole["title"]
    table_cell = doc.cells("tables", "data-table", "price_data_real")[s.hole[1].isoformat()]
    assert table_cell["data-state"] == "partial" and "bad" in table_cell["class"].split()
    assert s.failed_check in table_cell["title"]
    assert len(doc.cells("tables", "data-table", "price_data_real")) == 7
    flagged = [th["data-day"] for th in doc.find("th") if "bad" in th.get("class", "").split()
               and any("coins" in p.get("class", "").split() for p in th["parents"])]
    assert flagged == [s.hole[1].isoformat()]  # the coin heatmap flags the failed day in its header
    rows = [r for r in doc.find("tr") if r.get("data-status") and any(p.get("id") == "quality" for p in r["parents"])]
    statuses = [r["data-status"] for r in rows]
    assert statuses == sorted(statuses, key=["fail", "warn", "pass"].index)
    assert (rows[0]["data-table"], rows[0]["data-check"]) == ("price_data_real", s.failed_check)
    fresh = {r["data-table"]: r["data-status"] for r in doc.find("tr")
             if r.get("data-table") and any(p.get("id") == "freshness" for p in r["parents"])}
    assert fresh["crypto_news"] == "stale" and fresh["price_data_real"] == "fresh"
    fill = doc.find("tr", data_action="backfill")[0]
    assert f"#{s.backfill_id}" in fill["text"] and "prices_coingecko" in fill["text"]
    assert "SYNTHETIC sandbox data" in doc.find("div", id="synthetic-banner")[0]["text"]


def test_the_coin_heatmap_follows_the_table_picked_and_links_stay_relative(client):
    s = Seed()
    doc = Doc(client.get("/", params={"days": 7, "table": "ml_features_materialized"}).text)
    assert doc.find("table", data_table="ml_features_materialized")
    symbol, day, hours = s.features_gap
    assert doc.cells("coins", "data-symbol", symbol)[day.isoformat()]["data-present"] == str(24 - len(hours))
    hrefs = [a["href"] for a in doc.find("a")]
    assert hrefs and all(h.startswith("?") for h in hrefs)  # served under a prefix: nothing absolute
    assert all(not e.get("src", "").startswith(("http", "/")) for e in doc.elements)
    assert client.get("/", params={"days": 0}).status_code == 422


def test_a_warehouse_that_cannot_be_read_is_a_503_page_not_a_traceback():
    from fastapi.testclient import TestClient

    from cryptoetl.config import ConfigError

    def broken():
        raise ConfigError("no warehouse: set CRYPTOETL_WAREHOUSE_URL")

    app = page.create_app(warehouse=broken, clock=lambda: NOW)
    app.dependency_overrides[page.airflow_auth()] = lambda: None
    answer = TestClient(app).get("/")
    assert answer.status_code == 503 and "CRYPTOETL_WAREHOUSE_URL" in answer.text


# --- the plugin as Airflow loads it, and Airflow's auth in front of the page ----------------------------


def test_airflow_loads_the_plugin_with_its_app_and_nav_view():
    from airflow import plugins_manager

    info = {p["name"]: p for p in plugins_manager.get_plugin_info()}["cryptoetl_health"]
    apps = [(a["url_prefix"], a["app"]) for a in info["fastapi_apps"]]
    assert apps == [("/cryptoetl-health", "cryptoetl_health._LazyApp")]
    (view,) = info["external_views"]
    assert (view["url_route"], view["destination"]) == ("data-health", "nav")
    assert view["href"] == "cryptoetl-health/"  # relative: the UI resolves it against its own base URL
    assert view["icon"] == "cryptoetl-health/icon.svg" and view["nav_top_level"]
    assert any(a["url_prefix"] == "/cryptoetl-health" for a in plugins_manager.get_fastapi_plugins()[0])


def test_importing_the_plugin_stays_cheap():
    """Every task process imports the plugins folder: the plugin file must not pull in FastAPI or the warehouse."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import cryptoetl_health; "
            "print(sorted(m for m in ('fastapi', 'cryptoetl', 'cryptoetl_health_page') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(REPO / "plugins")], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_plugin_modules_stay_readable():
    from test_structure import oversized

    assert oversized({f"plugins.{p.stem}": p for p in (REPO / "plugins").glob("*.py")}) == []


@pytest.fixture(scope="module")
def airflow_api():
    """Airflow's own API server app (``airflow api-server`` serves it), with the plugins mounted as
    Airflow mounts them, on the session's metadata DB (token revocation is looked up there)."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from airflow.utils.db import initdb
    from fastapi.testclient import TestClient

    initdb()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "cryptoetl-test-" + "x" * 64)  # a key of a secure length
        yield TestClient(create_app("core"))
    purge_cached_app()


@pytest.mark.airflow
def test_the_page_is_behind_airflows_auth(airflow_api, sqlite_engine, monkeypatch):
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    seed(sqlite_engine)
    monkeypatch.setenv("CRYPTOETL_WAREHOUSE_URL", sqlite_engine.url.render_as_string(hide_password=False))
    url = f"{cryptoetl_health.URL_PREFIX}/"
    anonymous = airflow_api.get(url)
    assert anonymous.status_code == 401 and "Log in to Airflow" in anonymous.text
    assert "price_data_real" not in anonymous.text
    assert airflow_api.get(url, cookies={"_token": "not-a-jwt"}).status_code in (401, 403)
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
    for auth in ({"cookies": {"_token": token}}, {"headers": {"Authorization": f"Bearer {token}"}}):
        answer = airflow_api.get(url, params={"days": 60}, **auth)  # the cookie the UI sets at login, or a bearer
        assert answer.status_code == 200, answer.text[:300]
        assert Doc(answer.text).find("tr", data_table="price_data_real")
        assert Doc(answer.text).cells("coins", "data-symbol", Seed().hole[0])[Seed().hole[1].isoformat()][
            "data-state"] == "empty"
    assert airflow_api.get(f"{cryptoetl_health.URL_PREFIX}/icon.svg").headers["content-type"] == "image/svg+xml"


# --- (c) the page in a real browser: headless chromium, driven over the DevTools protocol ------------


def chromium() -> str:
    """Debian's chromium; a skip locally when it is missing, a failure in CI (.ci/run installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (apt-get install -y chromium): the browser test needs it"
        if IN_CI:
            pytest.fail(f"{message}; CI=true: it must run, not skip")
        pytest.skip(message)
    return found


def _browser_args(binary: str, *extra: str) -> list[str]:
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium refuses its sandbox as root
    return [binary, "--headless", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
            "--window-size=1400,1000", *sandbox, *extra]


class Served:
    """The plugin's app mounted under its URL prefix, as Airflow's API server mounts it, served by
    uvicorn in a thread on a free port."""

    def __init__(self, app):
        import uvicorn
        from fastapi import FastAPI

        root = FastAPI()
        root.mount(cryptoetl_health.URL_PREFIX, app)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}{cryptoetl_health.URL_PREFIX}/"
        self.server = uvicorn.Server(uvicorn.Config(root, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class DevTools:
    """Just enough of the Chrome DevTools protocol: open a page, evaluate JavaScript in it."""

    def __init__(self, binary: str, profile: str):
        with socket.socket() as probe:  # a free port for the DevTools endpoint
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.log = Path(profile).with_suffix(".log")
        Path(profile).mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(_browser_args(binary, f"--remote-debugging-port={port}",
                                                       f"--user-data-dir={profile}", "about:blank"),
                                         stdout=subprocess.DEVNULL, stderr=log)
        self.ids = 0
        from websockets.sync.client import connect

        self.ws = connect(self._devtools_url(port, time.monotonic() + 20), max_size=None, open_timeout=10)

    def _devtools_url(self, port: int, deadline: float) -> str:
        from urllib.error import URLError
        from urllib.request import urlopen

        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urlopen(f"http://127.0.0.1:{port}/json/version", timeout=2) as answer:
                    return json.load(answer)["webSocketDebuggerUrl"]
            except (URLError, OSError):
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError(f"chromium's DevTools endpoint did not answer (exit code {self.proc.poll()}): "
                           f"{self.log.read_text()[-2000:]}")

    def call(self, method: str, session: str | None = None, **params):
        self.ids += 1
        self.ws.send(json.dumps({"id": self.ids, "method": method, "params": params,
                                 **({"sessionId": session} if session else {})}))
        while True:
            reply = json.loads(self.ws.recv(timeout=15))
            if reply.get("id") == self.ids:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> str:
        """A new tab at ``url``, loaded; its session id."""
        target = self.call("Target.createTarget", url=url)["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.wait_loaded(session, url)
        return session

    def wait_loaded(self, session: str, url: str | None = None) -> None:
        deadline = time.monotonic() + 15
        while self.evaluate(session, "document.readyState + ' ' + location.href") != f"complete {url or ''}".strip():
            if url is None and self.evaluate(session, "document.readyState") == "complete":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the page did not load: {url}")
            time.sleep(0.05)

    def evaluate(self, session: str, expression: str):
        result = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# What the browser rendered: the hole's cells, the legend's colours, the first quality result.
PROBE = """(() => {
  const style = (el) => el && {bg: getComputedStyle(el).backgroundColor, w: el.getBoundingClientRect().width,
                               h: el.getBoundingClientRect().height};
  const hole = document.querySelector('table.coins tr[data-symbol="%(symbol)s"] td[data-day="%(day)s"]');
  const table = document.querySelector('table.tables tr[data-table="price_data_real"] td[data-day="%(day)s"]');
  const first = document.querySelector('#quality tbody tr');
  return {hole: {...style(hole), state: hole && hole.dataset.state, title: hole && hole.title},
          table: {...style(table), state: table && table.dataset.state, bad: table && table.classList.contains('bad'),
                  mark: table && getComputedStyle(table, '::after').content},
          legend: Object.fromEntries([...document.querySelectorAll('.legend i')].map((i) => [i.className,
                    ['backgroundColor', 'backgroundImage', 'boxShadow'].map((k) => getComputedStyle(i)[k])
                      .join(' | ')])),
          quality: first && {status: first.dataset.status, check: first.dataset.check, text: first.innerText},
          banner: (document.getElementById('synthetic-banner') || {}).innerText || null,
          link: document.querySelector('#coverage-coins nav a').href};
})()"""


def test_a_missing_chromium_skips_locally_but_fails_in_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sys.modules[__name__], "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        chromium()
    monkeypatch.setattr(sys.modules[__name__], "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        chromium()


def test_the_page_renders_in_a_real_browser(sqlite_engine, tmp_path):
    binary = chromium()
    s = seed(sqlite_engine)
    app = page.create_app(warehouse=lambda: page.Warehouse(sqlite_engine), clock=lambda: NOW)
    app.dependency_overrides[page.airflow_auth()] = lambda: None
    with Served(app) as served:
        browser = DevTools(binary, str(tmp_path / "profile"))
        try:
            tab = browser.open(served.url + "?days=7")
            seen = browser.evaluate(tab, PROBE % {"symbol": s.hole[0], "day": s.hole[1].isoformat()})
            # a relative link stays under the prefix: follow one, the coin heatmap switches table
            browser.evaluate(tab, "document.querySelector('#coverage-coins nav a').click()")
            browser.wait_loaded(tab, seen["link"])
            switched = browser.evaluate(tab, "[location.pathname, document.querySelector('table.coins').dataset.table]")
        finally:
            browser.close()
    assert seen["hole"]["state"] == "empty" and seen["legend"]["empty"].startswith(seen["hole"]["bg"] + " |")
    assert seen["hole"]["w"] > 5 and seen["hole"]["h"] > 5 and s.hole[1].isoformat() in seen["hole"]["title"]
    assert seen["table"]["state"] == "partial" and seen["table"]["bad"] and "✕" in seen["table"]["mark"]
    assert seen["table"]["bg"] in {seen["legend"][band].split(" |")[0] for band in ("p90", "p50", "p0")}
    assert len(set(seen["legend"].values())) == len(seen["legend"])  # every legend entry looks different
    assert (seen["quality"]["status"], seen["quality"]["check"]) == ("fail", s.failed_check)
    assert "SYNTHETIC sandbox data" in seen["banner"]
    assert switched[0] == cryptoetl_health.URL_PREFIX + "/" and switched[1] != "price_data_real"


def screenshot(path: Path, n_coins: int = 10) -> None:
    """A demo-like synthetic warehouse (the demo's first coins, 14 days, the seed's faults), its page at
    1400 x 1000 in headless chromium, written to ``path``."""
    from cryptoetl.config import UNIVERSE
    from cryptoetl.warehouse.engine import get_engine
    from cryptoetl.warehouse.schema import create_all

    with tempfile.TemporaryDirectory() as tmp:
        engine = get_engine(f"sqlite:///{tmp}/warehouse.db")
        create_all(engine)
        seed(engine, Seed(coins=tuple(c.symbol for c in UNIVERSE[:n_coins]), first=datetime(2026, 11, 20)))
        app = page.create_app(warehouse=lambda: page.Warehouse(engine), clock=lambda: NOW)
        app.dependency_overrides[page.airflow_auth()] = lambda: None
        with Served(app) as served:
            subprocess.run(_browser_args(shutil.which("chromium") or "chromium", f"--user-data-dir={tmp}/profile",
                                         f"--screenshot={Path(path).resolve()}", served.url + "?days=14"),
                           check=True, capture_output=True, timeout=60)


if __name__ == "__main__":
    screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/data-health-page.png"))
