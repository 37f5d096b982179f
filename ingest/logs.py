"""Structured JSON logs: one object per line, with the `extra={...}` fields of each call."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

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


def configure(level: str, **static: str) -> None:
    """Send every log record to stderr as JSON (static fields, e.g. the instance id, on each line)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(**static))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every failed connection attempt at ERROR while the broker is away: once is enough here.
    logging.getLogger("aiokafka").setLevel(max(logging.getLevelName(level), logging.WARNING))
