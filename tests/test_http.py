"""The shared HTTP client base: spacing, backoff and Retry-After, with a fake session and clock."""

from __future__ import annotations

import pytest

from cryptoetl.sources.http import HttpSource, SourceError, SourceRateLimited, retry_after_seconds


class _Resp:
    def __init__(self, status, body=b"{}", headers=None):
        self.status_code, self.content, self.headers = status, body, headers or {}
        self.text = body.decode()


class _Session:
    def __init__(self, *responses):
        self.responses, self.calls = list(responses), []

    def get(self, url, params=None, headers=None, timeout=None):
        self.calls.append((url, params))
        return self.responses.pop(0)


def _client(*responses, rate_per_minute=120):
    slept: list[float] = []
    client = HttpSource("http://api.test", rate_per_minute=rate_per_minute, sleep=slept.append,
                        clock=lambda: 0.0, session=_Session(*responses))
    return client, slept


def test_backoff_sleep_counts_as_spacing_and_calls_are_still_spaced():
    client, slept = _client(_Resp(500), _Resp(200), _Resp(200))  # 120/min: 0.5 s apart
    client.get_json("/a")
    assert slept == [1.0]  # the backoff; the retry needs no extra spacing after it
    client.get_json("/b")
    assert slept == [1.0, 0.5]  # the clock stood still: the next call waits the full spacing


def test_429_waits_retry_after_then_gives_up_with_a_rate_limit_error_and_no_secret():
    client, slept = _client(*(_Resp(429, b"slow down", {"Retry-After": "7"}) for _ in range(6)),
                            rate_per_minute=60_000)
    with pytest.raises(SourceRateLimited, match="giving up after 6 attempts") as info:
        client.get_json("/x", {"api_key": "s3cret", "q": 1})
    assert [s for s in slept if s >= 1] == [7.0] * 5
    assert "s3cret" not in str(info.value) and "***" in str(info.value)


def test_other_4xx_fail_at_once_and_bad_json_is_a_payload_error():
    client, slept = _client(_Resp(403, b"forbidden"))
    with pytest.raises(SourceError, match="HTTP 403"):
        client.get_json("/x")
    assert slept == []
    client, _ = _client(_Resp(200, b'{"a": [1, 2'))
    with pytest.raises(SourceError, match="not valid JSON"):
        client.get_json("/x")


@pytest.mark.parametrize(("value", "expected"), [("3", 3.0), ("0.5", 0.5), ("-2", 0.0), (None, None), ("soon", None)])
def test_retry_after_parsing(value, expected):
    assert retry_after_seconds(value) == expected
