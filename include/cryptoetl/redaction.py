"""No secret in any log line, error or CLI output: the one redactor of the process.

Every secret value the process holds is registered here (``register``): the API keys and the
warehouse password of the settings (``settings_secrets``, by the CLI and the local operator),
each client's own key (``HttpSource``) and the password of every engine's URL
(``warehouse.engine.get_engine``). ``redact(text)`` masks each of them as ``***``: the value, its
percent-encoded forms (a key inside a URL) and any prefix of it of ``PREFIX_CHARS`` or more
characters (a token cut short by a truncated body or an excerpt).

Where it is applied, and why that is everything:

- log records: ``install()`` puts ``RedactingFilter`` on the handlers (the root's, and any other
  logger's own). Every record of every logger (ours, urllib3's request lines at DEBUG, requests,
  fredapi, SQLAlchemy) ends in a handler, and a handler's filter sees them all, whereas a filter on
  a logger misses the records of its children. The filter redacts the formatted message (``msg %
  args``, so a key passed as an argument is caught), the traceback and the stack.
- exception texts: ``sources.http.SourceError`` redacts its message when it is built, so every error
  of every client is clean, whatever the server echoed.
- the CLI's own output (its ``error:`` line, a failure's traceback through logging) and the local
  operator's exception.

Values shorter than ``MIN_CHARS`` are not registered: masking them would garble ordinary text, and
they are no secret worth the name. This module is a leaf (it imports nothing of the project), so
``sources/`` and ``warehouse/`` use it without Airflow.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

MASK = "***"
PREFIX_CHARS = 8  # a leaked prefix this long is masked too
MIN_CHARS = 4

_secrets: tuple[str, ...] = ()  # longest first, so a longer secret is masked before a part of it
_lock = threading.Lock()


def register(*values: str | None) -> None:
    """Add secret values (None and too-short values are ignored). They stay for the process."""
    global _secrets
    forms = {form for value in values if value and len(value) >= MIN_CHARS
             for form in (value, quote(value, safe=""), quote_plus(value))}
    if forms - set(_secrets):
        with _lock:
            _secrets = tuple(sorted(set(_secrets) | forms, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret, and every prefix of one of ``PREFIX_CHARS``+, masked."""
    for secret in _secrets:
        text = _mask(text, secret)
    return text


def _mask(text: str, secret: str) -> str:
    head = secret[:PREFIX_CHARS]
    start = text.find(head)
    if start < 0:
        return text
    parts, done = [], 0
    while start >= 0:
        end = start + len(head)
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1  # as far as the text goes on with the secret
        parts += [text[done:start], MASK]
        done = end
        start = text.find(head, done)
    parts.append(text[done:])
    return "".join(parts)


class RedactingFilter(logging.Filter):
    """Redacts a record in place (message, traceback, stack); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: the handler reports it as usual
            return True
        if (clean := redact(message)) != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # formatted here, as the formatter would, so that the cached text is the redacted one
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def _handlers() -> Iterable[logging.Handler]:
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    return {handler for logger in loggers for handler in logger.handlers}


def settings_secrets(settings: Any) -> tuple[str, ...]:
    """The secret values a ``config.Settings`` holds: every ``*_API_KEY`` of its source settings
    (the ones ``Settings.__repr__`` masks) and the passwords of its warehouse and Airflow API URLs, as
    written and decoded."""
    return (*settings.api_keys, *url_passwords(settings.warehouse_url), *url_passwords(settings.airflow_api_url))


def url_passwords(url: str | None) -> tuple[str, ...]:
    """The password of a URL, as written and percent-decoded; none for no URL or not a URL."""
    try:
        password = urlsplit(url).password if url else None
    except ValueError:  # not a URL: whoever uses it reports that
        return ()
    return (password, unquote(password)) if password else ()


def install(settings: Any = None) -> None:
    """Register the secrets of ``settings`` (a ``config.Settings``) and filter every handler that
    exists now. Call it after configuring logging; calling it again is harmless."""
    if settings is not None:
        register(*settings_secrets(settings))
    for handler in _handlers():
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
