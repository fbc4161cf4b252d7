"""No API key or warehouse password in any log line, error or CLI output (cryptoetl/redaction.py).

The end-to-end tests run ``python -m cryptoetl -v run ...`` (debug level: urllib3 prints every
request URL) against the sandbox with fault injection and fake keys, and grep everything the
process printed for the keys and for their 8-character prefixes.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest

from cryptoetl import redaction
from cryptoetl.sandbox.server import SandboxServer
from cryptoetl.sources.http import HttpSource, SourceError, SourcePayloadError

INTERVAL = "2026-01-01T00:00Z/2026-01-02T00:00Z"
SANDBOX_NOW = datetime(2026, 1, 3, tzinfo=UTC).timestamp()


def leaks(text: str, key: str) -> list[str]:
    """The key, or its 8-character prefix, wherever it appears in ``text``."""
    return [part for part in (key, key[:redaction.PREFIX_CHARS]) if part in text]


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryptoetl", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=timeout)


# -- the redactor -------------------------------------------------------------------------------

def test_redact_masks_values_their_url_encodings_and_long_prefixes():
    key, password = secrets.token_hex(16), f"p@ss/{secrets.token_hex(4)}"
    redaction.register(key, password, None, "abc")  # None and too-short values are ignored
    text = (f"GET /x?api_key={key}&y=1; body starts '...auth_token={key[:11]}'; "
            f"mysql://u:{password}@h and mysql://u:{password.replace('@', '%40').replace('/', '%2F')}@h; "
            f"a short prefix {key[:7]} stays; abc stays")
    clean = redaction.redact(text)
    assert leaks(clean, key) == [] and password not in clean and "%40" not in clean
    assert clean == ("GET /x?api_key=***&y=1; body starts '...auth_token=***'; mysql://u:***@h and "
                     f"mysql://u:***@h; a short prefix {key[:7]} stays; abc stays")


def test_the_filter_on_root_handlers_covers_child_loggers_arguments_and_tracebacks():
    key = secrets.token_hex(20)
    redaction.register(key)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        redaction.install()
        assert redaction._FILTER in handler.filters
        child = logging.getLogger("urllib3.connectionpool")  # a third-party child logger, no filter of its own
        child.warning('%s "GET /posts/?auth_token=%s HTTP/1.1" %d', "http://h", key, 200)
        try:
            raise ValueError(f"server said: bad token {key}")
        except ValueError:
            logging.getLogger("fredapi").error("failed", exc_info=True)
    finally:
        root.removeHandler(handler)
    printed = stream.getvalue()
    assert "auth_token=*** HTTP/1.1" in printed and "bad token ***" in printed and "Traceback" in printed
    assert leaks(printed, key) == []


class _Resp:
    def __init__(self, status, body):
        self.status_code, self.content, self.headers, self.text = status, body.encode(), {}, body


class _Session:
    def __init__(self, resp):
        self.resp = resp

    def get(self, *args, **kwargs):
        return self.resp


def test_source_errors_mask_a_key_the_server_echoes_in_full_or_cut_short():
    key = secrets.token_hex(20)
    echo = _Resp(403, f'{{"error": "token {key} revoked"}}')
    client = HttpSource("http://api.test", api_key=key, sleep=lambda s: None, session=_Session(echo))
    with pytest.raises(SourceError, match=r"HTTP 403: .*token \*\*\* revoked") as info:
        client.get_json("/posts/", {"auth_token": key})
    assert leaks(str(info.value), key) == []
    truncated = _Resp(200, f'{{"next": "https://api.test/posts/?auth_token={key[:12]}')
    client.session = _Session(truncated)
    with pytest.raises(SourcePayloadError, match=r"auth_token=\*\*\*'") as info:
        client.get_json("/posts/")
    assert leaks(str(info.value), key) == []


# -- end to end: every keyed source, at debug level, failing -------------------------------------

@pytest.fixture(scope="module")
def frozen_sandbox():
    with SandboxServer(now=lambda: SANDBOX_NOW) as server:
        yield server


def _fake_keys() -> dict[str, str]:
    """Keys shaped like the real ones (the sandbox takes any FRED key of 32 lower-case alphanumerics)."""
    return {"fred": secrets.token_hex(16), "etherscan": secrets.token_hex(17).upper(),
            "guardian": str(uuid.uuid4()), "cryptopanic": secrets.token_hex(20)}


STEPS = {"fred": "macro", "etherscan": "onchain_eth", "guardian": "news_guardian", "cryptopanic": "news_cryptopanic"}


def _cryptopanic_cut_in_token(server, key: str) -> dict:
    """A truncated first page that ends 12 characters into the token of its ``next`` link."""
    import requests

    page = requests.get(f"{server.urls()['cryptopanic']}/posts/", timeout=30,
                        params={"auth_token": key, "public": "true", "kind": "news"}).text
    return {"kind": "malformed", "path_contains": "/cryptopanic", "keep": page.index(key) + 12}


@pytest.mark.parametrize("source,fault,expect", [
    ("fred", None, "rows written"),  # a run that works: urllib3 prints every request URL
    ("fred", "403", "Forbidden: key *** is revoked"),
    ("etherscan", "403", "Forbidden: key *** is revoked"),
    ("guardian", "403", "Forbidden: key *** is revoked"),
    ("cryptopanic", "403", "Forbidden: key *** is revoked"),
    ("cryptopanic", "truncated", "auth_token=***'"),
])
def test_no_key_in_any_output_at_debug_level(frozen_sandbox, sqlite_engine, source, fault, expect):
    keys = _fake_keys()
    faults = {None: [], "403": [{"kind": "403", "path_contains": f"/{source}"}],
              "truncated": [_cryptopanic_cut_in_token(frozen_sandbox, keys["cryptopanic"])]
              if source == "cryptopanic" else []}[fault]
    frozen_sandbox.set_faults(faults)
    env = {**frozen_sandbox.env(), **{f"{name.upper()}_API_KEY": key for name, key in keys.items()},
           f"{source.upper()}_RATE_PER_MINUTE": "60000", "ETHERSCAN_API_PLAN": "pro",
           "CRYPTOETL_WAREHOUSE_URL": sqlite_engine.url.render_as_string(hide_password=False)}
    result = cli("-v", "run", STEPS[source], "--interval", INTERVAL, env=env)
    frozen_sandbox.set_faults([])
    printed = result.stdout + result.stderr
    assert result.returncode == (0 if fault is None else 1), printed[-3000:]
    assert expect in printed, printed[-3000:]  # the key was there to leak: the server got it and echoed it
    requests = [line for line in printed.splitlines() if "urllib3.connectionpool" in line and '"GET ' in line]
    assert requests and all("=***" in line for line in requests)  # the debug request lines, masked
    for name, key in keys.items():
        assert leaks(printed, key) == [], f"{name} key leaked"
