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


class Throttle:
    """Let one log line per key through every `interval_ms`; count the ones held back in between.

    For lines that repeat by the thousand when something is wrong outside (a flood of forged signatures, a broker
    away): each costs ~10 µs to write, more than verifying a signature, and the first of a run says it all.
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


class RepeatFilter(logging.Filter):
    """Let a library's repeated lines through once per `interval_ms` each (by logger and message template).

    While the broker is away, aiokafka logs each failed connection and metadata attempt at ERROR, ten times a
    second: the first of each says it all. A line let through after some were held back says how many.
    """

    def __init__(self, logger_prefix: str, interval_ms: int) -> None:
        super().__init__()
        self.logger_prefix = logger_prefix
        self._throttle = Throttle(interval_ms)

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether to log the record (only the prefix's loggers are throttled)."""
        if not record.name.startswith(self.logger_prefix):
            return True
        held_back = self._throttle.allow((record.name, str(record.msg)), now_ms=int(record.created * 1000))
        if held_back is None:
            return False
        if held_back:
            record.held_back = held_back
        return True


#: aiokafka's repeated lines (see RepeatFilter): at most one of each this often.
AIOKAFKA_REPEAT_MS = 10_000


def configure(level: str, **static: str) -> None:
    """Send every log record to stderr as JSON (static fields, e.g. the instance id, on each line)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(**static))
    handler.addFilter(RepeatFilter("aiokafka", AIOKAFKA_REPEAT_MS))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.server").addFilter(MalformedRequestFilter())
    # aiokafka logs every failed connection attempt at ERROR while the broker is away: once is enough here.
    logging.getLogger("aiokafka").setLevel(max(logging.getLevelName(level), logging.WARNING))
