"""A benchmark's subprocesses (worker, ingest, baselines): on loopback, always stopped, waited on with bounds.

`devenv.processes` starts and stops them; this adds the argv of our modules and bounded waits on them.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable

from devenv.processes import Service


def python(module: str, *args: str) -> list[str]:
    """Return the argv that runs one of our modules with this interpreter."""
    return [sys.executable, "-m", module, *args]


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, what: str, timeout_s: float, services: list[Service], every_s: float = 0.2
) -> float:
    """Poll `check` until it is true; return the seconds it took. Fail if a service dies or time runs out."""
    began = time.monotonic()
    while True:
        if await check():  # first: a service may finish its work and exit on its own
            return time.monotonic() - began
        for running in services:
            running.check_alive()
        if time.monotonic() - began > timeout_s:
            tails = "".join(f"\n--- {s.name} log tail\n{s.log.read_text(errors='replace')[-2000:]}" for s in services)
            raise TimeoutError(f"{what}: not within {timeout_s:.0f}s{tails}")
        await asyncio.sleep(every_s)


def http_status(url: str) -> int | None:
    """GET a loopback URL; return its status, or None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  # loopback URLs we built
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


async def answers(url: str, status: int) -> bool:
    """Return whether `url` answers `status` (blocking call moved off the loop)."""
    return await asyncio.to_thread(http_status, url) == status


def http_get(url: str) -> tuple[int | None, bytes]:
    """GET a loopback URL; return its status and body, or (None, b"") if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  # loopback URLs we built
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, b""


async def membership(port: int) -> tuple[int, list[int]] | None:
    """Return a ready worker's group generation and raw partitions (its /readyz), or None if it is not ready."""
    status, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/readyz")
    if status != 200:
        return None
    answer = json.loads(body)
    return int(answer["generation"]), sorted(int(partition) for partition in answer["partitions"])
