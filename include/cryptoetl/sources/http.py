"""The HTTP behaviour every source client shares: rate limiting, retries, clear errors.

A source client subclasses ``HttpSource``, names its ``spec`` (sources/spec.py) and only describes
its endpoints. This base:

- builds the client from the settings (``from_settings``): base URL, plan, rate and key, the key
  checked here, once, with a message naming the setting when the plan needs one;

- spaces calls to the source's per-minute limit: with a ``limiter`` (the CLI gives every step the
  warehouse's, warehouse/quota.py) the slots are shared by every process and pod, so two tasks
  together keep the plan's rate; without one, per process;
- counts its calls (``calls``; the CLI logs them per task);
- on HTTP 429 waits for ``Retry-After`` (seconds or an HTTP date), else backs off
  exponentially; 5xx, timeouts and connection errors back off exponentially too. A wait longer
  than ``max_wait`` is not slept: the task fails with ``SourceRateLimited`` at once and Airflow
  retries it after its retry delay, so no task holds its pool slot asleep for minutes;
- never puts a secret in an error: its key is registered with the process's redactor
  (cryptoetl/redaction.py) and every ``SourceError`` redacts its message when it is built, so
  a key echoed by the server (a 403 body, a ``next`` link, a truncated page) is masked, in
  full or as a prefix; the CLI's log handlers mask it in every log line, urllib3's request
  URLs included; query parameters named in ``secret_params`` are shown as ``***``;
- reports whether the server labelled its answer synthetic (the offline sandbox does, with
  ``X-Cryptoetl-Synthetic: true``), so loaders can label the rows they write.

Errors are ``SourceError`` (or one of the shared subclasses below) with a message that names the
source, the path and the problem. A step lets them propagate: the task fails and nothing is written.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from cryptoetl import __version__
from cryptoetl.redaction import redact, register
from cryptoetl.sources.spec import SourceSpec

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)
EXCERPT_CHARS = 200  # how much of an unusable answer an error shows


class SourceError(RuntimeError):
    """A source failed or answered something unusable. Safe to show: the message is redacted
    here, whoever builds it and whatever the server echoed."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))


class SourceRateLimited(SourceError):
    """HTTP 429 persisted after every retry."""


class SourcePayloadError(SourceError):
    """The answer arrived but does not have the documented shape (malformed or drifted)."""


class CallLimiter(Protocol):
    """Shares a source's call slots between processes (warehouse/quota.py implements it)."""

    def reserve(self, source: str, min_interval: float) -> float:
        """Book the next call slot of ``source``, ``min_interval`` seconds after the previous one,
        and count the call; the seconds to wait before calling."""
        ...

    def hold(self, source: str, seconds: float) -> None:
        """No call of ``source`` from any process for ``seconds`` (the API asked: HTTP 429)."""
        ...


class SourceDataGap(SourceError):
    """The answer lacks a period that was asked for (not published yet, or a hole at the source)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str]
    synthetic: bool

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


class HttpSource:
    """Base client. Subclasses set ``spec`` and call ``request`` / ``get_json``."""

    spec: ClassVar[SourceSpec]
    secret_params: tuple[str, ...] = ("api_key", "apikey", "api-key", "auth_token", "key")

    def __init__(self, base_url: str, *, api_key: str | None = None, plan: str | None = None,
                 rate_per_minute: float = 60, timeout: float = 30.0, max_retries: int = 5,
                 backoff_base: float = 1.0, max_wait: float = 60.0, limiter: CallLimiter | None = None,
                 headers: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        register(api_key)  # from now on masked in every error and log line of the process
        self.plan = plan
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.max_wait = max_wait  # the longest sleep on one Retry-After; longer waits go back to Airflow
        self.limiter = limiter
        self.calls = 0  # HTTP requests sent by this client
        self.min_interval = 60.0 / rate_per_minute if rate_per_minute > 0 else 0.0
        self.sleep, self.clock = sleep, clock
        import requests  # here, not at import: the registry reads every SPEC at DAG parse time

        self.session = session or requests.Session()
        self.headers = {"accept": "application/json", "user-agent": f"cryptoetl/{__version__}", **(headers or {})}
        self._last_call: float | None = None
        self._slept_since_call = 0.0

    @property
    def name(self) -> str:
        spec = getattr(type(self), "spec", None)
        return spec.name if spec is not None else "http"

    @classmethod
    def from_settings(cls, settings, **kwargs):
        """The client as the settings configure it. The one place a missing key is reported."""
        src = cls.spec.resolve(settings)
        return cls(src.base_url, api_key=src.key, plan=src.plan, rate_per_minute=src.rate_per_minute,
                   timeout=settings.http_timeout_seconds, **kwargs)

    # -- pieces subclasses may override ---------------------------------------------------
    def _redact(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: ("***" if k.lower() in self.secret_params else v) for k, v in (params or {}).items()}

    def _throttle(self) -> None:
        self.calls += 1
        if self.limiter is not None:
            wait = self.limiter.reserve(self.name, self.min_interval)
            if wait > 0:
                self.sleep(wait)
            return
        if self._last_call is not None and self.min_interval:
            # A backoff sleep since the last call counts as spacing, even when ``sleep`` is a
            # test double that lets no clock time pass.
            elapsed = max(self.clock() - self._last_call, self._slept_since_call)
            wait = self.min_interval - elapsed
            if wait > 0:
                self.sleep(wait)
        self._last_call = self.clock()
        self._slept_since_call = 0.0

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_base * 2**attempt, 60.0)

    def final_error(self, shown: str, status: int, body: str) -> SourceError:
        """The error for a final (4xx) answer; a client overrides it to explain its API's codes."""
        return SourceError(f"{shown}: HTTP {status}: {body[:EXCERPT_CHARS].replace(chr(10), ' ')}")

    # -- requests ---------------------------------------------------------------------------
    def request(self, path: str, params: Mapping[str, Any] | None = None, *, url: str | None = None) -> Response:
        """GET ``base_url + path`` (or an absolute ``url``) until a 200, with retries. Any other
        4xx is final: it will not get better by asking again."""
        target = url or f"{self.base_url}{path}"
        shown = f"{self.name} GET {url or path} {self._redact(params) if params else ''}".rstrip()
        last_problem = ""
        from requests import exceptions as requests_errors

        for attempt in range(self.max_retries + 1):
            self._throttle()
            try:
                resp = self.session.get(target, params=params, headers=self.headers, timeout=self.timeout)
            except (requests_errors.Timeout, requests_errors.ConnectionError) as exc:
                # str(exc) can contain the URL with its query string (and the key): report the type only.
                last_problem = type(exc).__name__
                wait = self._backoff(attempt)
            else:
                synthetic = resp.headers.get("X-Cryptoetl-Synthetic", "").lower() == "true"
                if resp.status_code == 200:
                    return Response(200, resp.content, resp.headers, synthetic)
                excerpt = resp.text[:EXCERPT_CHARS].replace("\n", " ")
                if resp.status_code == 429:
                    asked = retry_after_seconds(resp.headers.get("Retry-After"))
                    wait = self._backoff(attempt) if asked is None else asked
                    last_problem = f"HTTP 429 {excerpt}"
                    if self.limiter is not None:  # every process waits, not only this one
                        self.limiter.hold(self.name, wait)
                    if wait > self.max_wait:
                        raise SourceRateLimited(
                            f"{shown}: HTTP 429, Retry-After {wait:.0f} s is longer than the {self.max_wait:.0f} s "
                            f"a task may sleep; failing now so that Airflow retries the task later: {excerpt}")
                elif resp.status_code >= 500:
                    wait = self._backoff(attempt)
                    last_problem = f"HTTP {resp.status_code} {excerpt}"
                else:
                    raise self.final_error(shown, resp.status_code, resp.text)
            if attempt == self.max_retries:
                break
            log.warning("%s: %s; retry %d/%d in %.1fs", shown, last_problem[:120], attempt + 1,
                        self.max_retries, wait)
            self.sleep(wait)
            self._slept_since_call += wait
        error = SourceRateLimited if last_problem.startswith("HTTP 429") else SourceError
        raise error(f"{shown}: giving up after {self.max_retries + 1} attempts: {last_problem}")

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, *,
                 url: str | None = None) -> tuple[Any, bool]:
        """Parsed JSON body and whether the server labelled it synthetic."""
        resp = self.request(path, params, url=url)
        try:
            return json.loads(resp.body), resp.synthetic
        except ValueError as exc:
            raise SourcePayloadError(f"{self.name} GET {url or path}: response is not valid JSON ({exc}); "
                                     f"body starts {resp.text[:EXCERPT_CHARS]!r}") from exc
