"""`python -m ingest` refuses bad settings by name, and logs are JSON objects."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from aiohttp.http_exceptions import BadHttpMessage

from ingest import logs
from ingest.logs import JsonFormatter, MalformedRequestFilter


def run_ingest(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    return subprocess.run(
        [sys.executable, "-m", "ingest"], env={**clean, **env}, capture_output=True, text=True, timeout=30, check=False
    )


def test_starting_without_any_secret_is_refused_naming_the_variables() -> None:
    result = run_ingest()
    assert result.returncode == 2
    assert "INGEST_AGORA_SECRETS" in result.stderr
    assert "INGEST_ALLOW_UNSIGNED" in result.stderr


def test_a_bad_value_is_refused_naming_the_variable() -> None:
    result = run_ingest(INGEST_AGORA_SECRETS="s", INGEST_PUBLISH_TIMEOUT_S="soon")
    assert result.returncode == 2
    assert "INGEST_PUBLISH_TIMEOUT_S:" in result.stderr


def test_a_log_record_becomes_one_json_object_with_its_extra_fields() -> None:
    record = logging.makeLogRecord({"name": "ingest", "levelname": "WARNING", "msg": "refused %s", "args": ("x",)})
    record.provider = "agora"
    line = JsonFormatter(instance="i-1").format(record)
    assert json.loads(line) | {"ts": 0} == {
        "ts": 0,
        "level": "WARNING",
        "logger": "ingest",
        "msg": "refused x",
        "instance": "i-1",
        "provider": "agora",
    }


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_aiokafka_connection_noise_stays_at_warning_or_above(level: str) -> None:
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    try:
        logs.configure(level)
        assert logging.getLogger("aiokafka").level == logging.WARNING
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)


def error_record(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:  # to capture exc_info, exactly as aiohttp's logger.exception does
        return logging.getLogger("aiohttp.server").makeRecord(
            "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s", ("1.2.3.4",),
            sys.exc_info(),
        )  # fmt: skip


def test_a_malformed_request_is_logged_as_one_info_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert not MalformedRequestFilter().filter(error_record(BadHttpMessage("bad")))  # INFO is not logged then
    caplog.set_level(logging.INFO)
    record = error_record(BadHttpMessage("Invalid header value char: b'\\xff'"))
    assert MalformedRequestFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["level"], entry["msg"], entry["status"]) == ("INFO", "malformed HTTP request refused", 400)
    assert "exc" not in entry


def test_a_server_side_error_keeps_its_level_and_traceback() -> None:
    record = error_record(RuntimeError("a bug of ours"))
    assert MalformedRequestFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "ERROR"
    assert "Traceback" in entry["exc"]
