"""Offline stand-in for every external API. ALL DATA HERE IS SYNTHETIC.

The series are seeded random walks and generated texts, meaningless for trading or
research; they exist so that the demo and the tests run the real clients end to end with no
internet. Every response carries ``X-Cryptoetl-Synthetic: true`` and the loaders label the
rows they write from it.

One server speaks every registered source's API (``sources/registry.py``): each source's spec names
its sandbox class here (``SourceSpec.sandbox``) and the path it is served under
(``SourceSpec.sandbox_path``), with the real request and response shapes (see each module's
docstring). ``SandboxServer.urls()`` gives the base URL of each, which is what the clients'
``*_BASE_URL`` settings point at.

Fault injection, from Python (``server.set_faults``), over HTTP (``POST /__sandbox__/faults``
with a JSON list, ``DELETE`` to clear) or from ``CRYPTOETL_SANDBOX_FAULTS`` (same JSON) for the
CLI. A fault is ``{"kind": "429"|"500"|"403"|"timeout"|"malformed"|"empty"|"drift", "count": N
(matching requests affected, default 1, -1 = forever), "path_contains": "...",
"retry_after": seconds (429), "keep": bytes (malformed)}``. ``malformed`` cuts the real body in
half (or after ``keep`` bytes); ``empty`` and ``drift`` (a renamed field) are defined per endpoint.
``403`` refuses the request whatever its key and echoes the key (the route's ``key_param``) and
the whole request URL in the body, as careless APIs do: what the clients' redaction must survive.

Outages, for the incident scenario: ``server.set_outages([(from, to), ...])`` (UNIX seconds) or ``POST
/__sandbox__/outages`` with ``[[from, to], ...]`` (``DELETE`` to clear): CoinGecko then serves no
``market_chart/range`` point stamped in those windows, as if it had been down then, whatever the
request; everything else is served as usual.

Call counts, for benchmarks ("API calls per coin"): every request to an API route counts once,
whatever its answer (faults and refused keys included), under its source and endpoint template.
``server.stats()`` or ``GET /__sandbox__/stats`` gives them, e.g. ``{"coingecko": {"/coins/markets":
3, "/coins/{coin}/market_chart/range": 640}, "total": 643}``; ``server.reset_stats()`` or ``DELETE``
zeroes them. ``server.requests`` keeps every request (method, path, query, headers) as well.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptoetl import refs
from cryptoetl.sandbox.common import Route
from cryptoetl.sources import registry


class SandboxServer:
    """HTTP sandbox in a daemon thread. ``start()`` returns the CoinGecko base URL; ``urls()``
    gives every API's. ``now`` is the sandbox's clock: nothing after it is served."""



    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, now: Callable[[], float] | None = None,
                 require_key: str | None = None, timeout_sleep: float = 5.0, plan_history: bool = True):
        self.host, self.port = host, port
        self.now = now or time.time
        self.require_key = require_key
        # as the real plans: without a pro key, CoinGecko serves the last 365 days only (False: all)
        self.history_days = 365 if plan_history and require_key != "pro" else None
        self.timeout_sleep = timeout_sleep
        self.requests: list[dict] = []
        self._faults: list[dict] = []
        self.outages: list[tuple[float, float]] = []  # CoinGecko serves no chart point in these windows
        self._calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.apis: dict[str, object] = {}  # by class name
        self.routes: list[Route] = []
        for spec in registry.sources():
            cls = refs.resolve(spec.sandbox)
            if cls.__name__ in self.apis:  # one class may serve several sources
                continue
            api = cls(self)
            self.apis[cls.__name__] = api
            self.routes += api.routes()

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.urls()["coingecko"]

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def urls(self) -> dict[str, str]:
        """Base URL of each API, keyed by its settings prefix (``fred`` -> ``FRED_BASE_URL``)."""
        return registry.sandbox_urls(self.root_url)

    def env(self) -> dict[str, str]:
        """Environment that points every client at this sandbox (``{PREFIX}_BASE_URL``)."""
        return {f"{name.upper()}_BASE_URL": url for name, url in self.urls().items()}

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
            if fault.get("kind") not in {"429", "500", "403", "timeout", "malformed", "empty", "drift"}:
                raise ValueError(f"unknown sandbox fault {fault!r}")
        with self._lock:
            self._faults = [{"count": 1, **f} for f in faults]

    def set_outages(self, windows) -> None:
        outages = [(float(lo), float(hi)) for lo, hi in windows]
        if any(lo >= hi for lo, hi in outages):
            raise ValueError(f"an outage window must end after it starts: {windows!r}")
        self.outages = outages

    def _take_fault(self, path: str, *, forbidden: bool = False) -> dict | None:
        """The next fault for ``path``: a "403" one if ``forbidden``, else any other kind."""
        with self._lock:
            for fault in self._faults:
                if (fault.get("path_contains", "") in path and fault["count"] != 0
                        and (fault["kind"] == "403") == forbidden):
                    if fault["count"] > 0:
                        fault["count"] -= 1
                    return fault
        return None

    # -- call counts ----------------------------------------------------------------------------
    def stats(self) -> dict:
        """Calls per source and endpoint template since the start or the last reset, and their total."""
        with self._lock:
            out: dict = {}
            for (source, endpoint), count in sorted(self._calls.items()):
                out.setdefault(source, {})[endpoint] = count
            return {**out, "total": sum(self._calls.values())}

    def reset_stats(self) -> None:
        with self._lock:
            self._calls.clear()

    def _control(self, handler, method: str, path: str) -> None:
        """The sandbox's own endpoints: ``/__sandbox__/faults`` and ``/__sandbox__/stats``."""
        if path == "/__sandbox__/outages":
            if method == "POST":
                length = int(handler.headers.get("Content-Length") or 0)
                try:
                    self.set_outages(json.loads(handler.rfile.read(length) or b"[]"))
                except (ValueError, TypeError) as exc:
                    return self._send(handler, 400, {"error": str(exc)})
            elif method == "DELETE":
                self.set_outages([])
            return self._send(handler, 200, {"outages": self.outages})
        if path == "/__sandbox__/faults":
            if method == "POST":
                length = int(handler.headers.get("Content-Length") or 0)
                try:
                    self.set_faults(json.loads(handler.rfile.read(length) or b"[]"))
                except ValueError as exc:
                    return self._send(handler, 400, {"error": str(exc)})
            elif method == "DELETE":
                self.set_faults([])
            return self._send(handler, 200, {"faults": self._faults})
        if path == "/__sandbox__/stats" and method in ("GET", "DELETE"):
            if method == "DELETE":
                self.reset_stats()
            return self._send(handler, 200, self.stats())
        return self._send(handler, 404, {"error": "Not Found"})

    # -- request handling -------------------------------------------------------------------
    @staticmethod
    def _encode(body, content_type: str | None) -> tuple[bytes, str]:
        if isinstance(body, bytes):
            return body, content_type or "application/json"
        if isinstance(body, str):
            return body.encode(), content_type or "text/plain; charset=utf-8"
        return json.dumps(body).encode(), content_type or "application/json"

    def _send(self, handler, status: int, body, headers: dict | None = None, content_type: str | None = None) -> None:
        raw, content_type = self._encode(body, content_type)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
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
        if url.path.startswith("/__sandbox__/"):
            return self._control(handler, method, url.path)
        route = next(((r, match) for r in self.routes
                      if r.method == method and (match := r.regex.match(url.path))), None)
        if route is None:
            return self._send(handler, 404, {"error": "Not Found"})
        route, match = route
        with self._lock:
            self._calls[endpoint(route.regex.pattern)] += 1
        if self._take_fault(url.path, forbidden=True):  # refused whatever the key: before the key check
            key = query.get(route.key_param or "", "")
            return self._send(handler, 403, {"error": f"Forbidden: key {key} is revoked (synthetic sandbox)",
                                             "request": handler.path})
        if route.auth is not None and (denied := route.auth(query, headers)) is not None:
            return self._send(handler, *denied)
        fault = self._take_fault(url.path)
        kind = fault["kind"] if fault else None
        if kind == "429":
            body = route.rate_limited or {"error": "Rate limit exceeded (synthetic sandbox)"}
            return self._send(handler, 429, body, {"Retry-After": str(fault.get("retry_after", route.retry_after))})
        if kind == "500":
            return self._send(handler, 500, {"error": "Internal Server Error (injected)"})
        if kind == "timeout":
            time.sleep(self.timeout_sleep)
        status, body, *rest = route.handler(query, **match.groupdict())
        content_type = rest[0] if rest else None
        if status == 200 and kind == "empty" and route.empty is not None:
            body = route.empty(body)
        elif status == 200 and kind == "drift" and route.drift is not None:
            body = route.drift(body)
        elif status == 200 and kind == "malformed":
            raw, content_type = self._encode(body, content_type)
            body = raw[: max(int(fault.get("keep", len(raw) // 2)), 1)]
        self._send(handler, status, body, content_type=content_type)


@lru_cache(maxsize=256)
def endpoint(pattern: str) -> tuple[str, str]:
    """(source, endpoint template) of a route's pattern, the template relative to the source's base
    URL: ``^/api/v3/coins/(?P<coin>[^/]+)/market_chart/range$`` -> ``("coingecko",
    "/coins/{coin}/market_chart/range")``."""
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern).lstrip("^").rstrip("$")
    path = path.replace("/?", "").replace("\\", "")
    for spec in sorted(registry.sources(), key=lambda s: -len(s.sandbox_path)):
        if path == spec.sandbox_path or path.startswith(spec.sandbox_path.rstrip("/") + "/"):
            return spec.name, path[len(spec.sandbox_path):] or "/"
    return "sandbox", path


def serve(host: str, port: int) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (``python -m cryptoetl sandbox``)."""
    server = SandboxServer(host, port)
    if raw := os.environ.get("CRYPTOETL_SANDBOX_FAULTS"):
        server.set_faults(json.loads(raw))
    server.start()
    print(f"cryptoetl sandbox serving SYNTHETIC data (not market data) at {server.root_url}", flush=True)
    for name, url in server.urls().items():
        print(f"  {name.upper()}_BASE_URL={url}", flush=True)
    accepted = registry.sandbox_env()
    print("keys and plans it accepts (SYNTHETIC sandbox only, never real keys):", flush=True)
    for name, value in accepted.items():
        print(f"  {name}={value}", flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
