"""Offline stand-in for the external APIs. ALL DATA HERE IS SYNTHETIC.

The series are seeded random walks, meaningless for trading or research; they exist so that
the demo and the tests run the real clients end to end with no internet. Every response
carries ``X-Cryptoetl-Synthetic: true`` and the loaders label the rows they write from it.

Speaks CoinGecko v3 (``/ping``, ``/coins/{id}/market_chart/range``) with the real request and
response shapes, including the automatic granularity: <= 1 day -> 5-minute points,
<= 90 days -> hourly points a few seconds after the hour, longer -> daily points at 00:00.

Fault injection, from Python (``server.set_faults``), over HTTP (``POST /__sandbox__/faults``
with a JSON list, ``DELETE`` to clear) or from ``CRYPTOETL_SANDBOX_FAULTS`` (same JSON) for the
CLI. A fault is ``{"kind": "429"|"500"|"timeout"|"malformed"|"empty"|"drift", "count": N
(matching requests affected, default 1, -1 = forever), "path_contains": "...",
"retry_after": seconds (429)}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np

EPOCH = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp())
HOUR = 3600
DAY = 86400
HORIZON_HOURS = 24 * 366 * 10  # 2023-2032
# Price level and circulating supply per coin id; anything else gets a seeded level.
LEVELS = {"bitcoin": (60_000.0, 19.7e6), "ethereum": (3_000.0, 120e6), "solana": (150.0, 460e6),
          "binancecoin": (550.0, 150e6), "ripple": (0.55, 55e9), "cardano": (0.45, 35e9),
          "dogecoin": (0.12, 144e9), "avalanche-2": (30.0, 400e6), "polkadot": (6.0, 1.4e9),
          "chainlink": (14.0, 600e6)}
KNOWN_COINS = frozenset(LEVELS)


def _seed(name: str) -> int:
    """Stable across processes (unlike hash())."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


class _Series:
    """Hourly price/market-cap/volume on a fixed grid of HORIZON_HOURS from EPOCH.

    Each stream has its own seed and is generated once, so a value never depends on which
    ranges were requested before (the whole point of a deterministic sandbox)."""

    def __init__(self, coin_id: str):
        def rng(stream: str) -> np.random.Generator:
            return np.random.default_rng(_seed(f"{coin_id}/{stream}"))

        self.level, self.supply = LEVELS.get(coin_id, (float(rng("level").uniform(0.1, 500)), 1e9))
        self.log_price = np.log(self.level) + np.cumsum(rng("steps").normal(0.0, 0.006, HORIZON_HOURS))
        self.volume_noise = rng("volume").lognormal(0.0, 0.3, HORIZON_HOURS)
        self.jitter = rng("jitter").integers(0, 300, HORIZON_HOURS)

    def hourly(self, first_hour: int, last_hour: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(timestamp_s, price, market_cap, volume) for hour indexes [first, last]."""
        idx = np.arange(max(first_hour, 0), min(last_hour, HORIZON_HOURS - 1) + 1)
        price = np.exp(self.log_price[idx])
        ts = EPOCH + idx * HOUR + self.jitter[idx]
        return ts, price, price * self.supply, price * self.supply * 0.03 * self.volume_noise[idx]


class SandboxServer:
    """HTTP sandbox in a daemon thread. ``start()`` returns the CoinGecko-style base URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, now: Callable[[], float] | None = None,
                 require_key: str | None = None, timeout_sleep: float = 5.0):
        self.host, self.port = host, port
        self.now = now or time.time
        self.require_key = require_key
        self.timeout_sleep = timeout_sleep
        self.requests: list[dict] = []
        self._faults: list[dict] = []
        self._lock = threading.Lock()
        self._series: dict[str, _Series] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.routes: list[tuple[str, re.Pattern, Callable]] = [
            ("GET", re.compile(r"^/api/v3/ping$"), self._ping),
            ("GET", re.compile(r"^/api/v3/coins/(?P<coin>[^/]+)/market_chart/range$"), self._market_chart_range),
        ]

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/v3"

    def start(self) -> str:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - stdlib naming
                server._handle(self, "GET")

            def do_POST(self):  # noqa: N802
                server._handle(self, "POST")

            def do_DELETE(self):  # noqa: N802
                server._handle(self, "DELETE")

            def log_message(self, *args):  # keep test and demo output quiet
                pass

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sandbox", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------------------
    def set_faults(self, faults: list[dict]) -> None:
        for fault in faults:
            if fault.get("kind") not in {"429", "500", "timeout", "malformed", "empty", "drift"}:
                raise ValueError(f"unknown sandbox fault {fault!r}")
        with self._lock:
            self._faults = [{"count": 1, **f} for f in faults]

    def _take_fault(self, path: str) -> dict | None:
        with self._lock:
            for fault in self._faults:
                if fault.get("path_contains", "") in path and fault["count"] != 0:
                    if fault["count"] > 0:
                        fault["count"] -= 1
                    return fault
        return None

    # -- request handling -------------------------------------------------------------------
    def _send(self, handler, status: int, body, headers: dict | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("X-Cryptoetl-Synthetic", "true")
            for key, value in (headers or {}).items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(raw)))
            handler.end_headers()
            handler.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout tests)
            pass

    def _handle(self, handler, method: str) -> None:
        url = urlparse(handler.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        headers = {k.lower(): v for k, v in handler.headers.items()}
        self.requests.append({"method": method, "path": url.path, "query": query, "headers": headers})
        if url.path == "/__sandbox__/faults":
            if method == "POST":
                length = int(handler.headers.get("Content-Length") or 0)
                try:
                    self.set_faults(json.loads(handler.rfile.read(length) or b"[]"))
                except ValueError as exc:
                    return self._send(handler, 400, {"error": str(exc)})
            elif method == "DELETE":
                self.set_faults([])
            return self._send(handler, 200, {"faults": self._faults})
        route = next(((func, match) for route_method, pattern, func in self.routes
                      if route_method == method and (match := pattern.match(url.path))), None)
        if route is None:
            return self._send(handler, 404, {"error": "Not Found"})
        func, match = route
        if self.require_key and f"x-cg-{self.require_key}-api-key" not in headers:
            return self._send(handler, 401, {"status": {"error_code": 10002,
                                                        "error_message": "API Key Missing (synthetic sandbox)"}})
        fault = self._take_fault(url.path)
        if fault is not None:
            kind = fault["kind"]
            if kind == "429":
                return self._send(handler, 429, {"status": {"error_code": 429, "error_message":
                                  "You've exceeded the Rate Limit. (synthetic sandbox)"}},
                                  {"Retry-After": str(fault.get("retry_after", 1))})
            if kind == "500":
                return self._send(handler, 500, {"error": "Internal Server Error (injected)"})
            if kind == "timeout":
                time.sleep(self.timeout_sleep)
            if kind == "malformed":
                return self._send(handler, 200, b'{"prices": [[1700000000000, 1.0], [17000')
        status, body = func(query, **match.groupdict())
        if fault is not None and status == 200:
            if fault["kind"] == "empty":
                body = {key: [] for key in body}
            elif fault["kind"] == "drift":
                body = {("price" if k == "prices" else k): v for k, v in body.items()}
        self._send(handler, status, body)

    def _ping(self, query):
        return 200, {"gecko_says": "(V3) To the Moon! (synthetic sandbox)"}

    def _market_chart_range(self, query, coin: str):
        if coin not in KNOWN_COINS:
            return 404, {"error": "coin not found"}
        try:
            lo, hi = float(query["from"]), float(query["to"])
        except (KeyError, ValueError):
            return 400, {"error": "invalid or missing 'from'/'to' (UNIX seconds)"}
        if query.get("vs_currency") is None:
            return 400, {"error": "missing 'vs_currency'"}
        hi = min(hi, self.now())
        if hi <= lo:
            return 200, {"prices": [], "market_caps": [], "total_volumes": []}
        series = self._series.setdefault(coin, _Series(coin))
        span = hi - lo
        first, last = int((lo - EPOCH) // HOUR) - 1, int((hi - EPOCH) // HOUR) + 1
        ts, price, cap, vol = series.hourly(first, last)
        if span <= DAY:  # 5-minute points interpolated between hourly ones
            grid = np.arange(np.ceil(lo / 300) * 300, hi + 1, 300)
            ts, price, cap, vol = (grid, *(np.interp(grid, ts, arr) for arr in (price, cap, vol)))
        elif span > 90 * DAY:  # daily at 00:00
            keep = ((ts - EPOCH) // HOUR) % 24 == 0
            ts, price, cap, vol = ts[keep] - (ts[keep] - EPOCH) % HOUR, price[keep], cap[keep], vol[keep]
        inside = (ts >= lo) & (ts <= hi)
        ms = (ts[inside] * 1000).astype(np.int64).tolist()
        return 200, {
            "prices": [[t, p] for t, p in zip(ms, price[inside].tolist(), strict=True)],
            "market_caps": [[t, c] for t, c in zip(ms, cap[inside].tolist(), strict=True)],
            "total_volumes": [[t, v] for t, v in zip(ms, vol[inside].tolist(), strict=True)],
        }


def serve(host: str, port: int) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (``python -m cryptoetl sandbox``)."""
    server = SandboxServer(host, port)
    if raw := os.environ.get("CRYPTOETL_SANDBOX_FAULTS"):
        server.set_faults(json.loads(raw))
    url = server.start()
    print(f"cryptoetl sandbox serving SYNTHETIC data (not market data) at {url}", flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
