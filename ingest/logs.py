"""Structured JSON logs: one object per line, with the `extra={...}` fields of each call."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError

#: Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, extra fields, exception."""

    def __init__(self, **static: str) -> None:
        super().__init__()
        self.static = static

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        entry: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **self.static,
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=repr).decode()


class MalformedRequestFilter(logging.Filter):
    """Log aiohttp's refusal of malformed HTTP as one INFO line, not an ERROR with a traceback.

    Anyone can send malformed requests: at ERROR with a stack each, they would flood the logs and page people.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite a client's malformed request in place; pass everything else unchanged."""
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError) or not 400 <= (error.code or 400) < 500:
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args, record.exc_info, record.exc_text = "malformed HTTP request refused", (), None, None
        record.status, record.reason = error.code or 400, error.message[:200]
        # The logger let the record through as an ERROR: as an INFO it must still respect the configured level.
        return logging.getLogger().isEnabledFor(logging.INFO)


def configure(level: str, **static: str) -> None:
    """Send every log record to stderr as JSON (static fields, e.g. the instance id, on each line)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(**static))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.server").addFilter(MalformedRequestFilter())
    # aiokafka logs every failed connection attempt at ERROR while the broker is away: once is enough here.
    logging.getLogger("aiokafka").setLevel(max(logging.getLevelName(level), logging.WARNING))


class Throttle:
    """Let one log line per key through every `interval_ms`; count the ones held back in between.

    Anyone can send a forged signature: logging each would let a flood fill the logs, and a log line costs more
    than verifying the signature (~10 µs against ~6 µs measured in-process). The counters count every one.
    """

    def __init__(self, interval_ms: int) -> None:
        self.interval_ms = interval_ms
        self._last: dict[tuple[str, ...], int] = {}
        self._held: dict[tuple[str, ...], int] = {}

    def allow(self, key: tuple[str, ...], *, now_ms: int) -> int | None:
        """Return None to hold this line back, else how many of the key's lines were held back since the last."""
        last = self._last.get(key)
        if last is not None and now_ms - last < self.interval_ms:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now_ms
        return self._held.pop(key, 0)
