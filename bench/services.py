"""A benchmark's subprocesses (worker, ingest, baselines): on loopback, always stopped, waited on with bounds."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: A stopped service gets this long after SIGTERM before SIGKILL.
STOP_S = 20


class ServiceDied(RuntimeError):
    """A benchmark's subprocess exited while it was needed; the message carries its log's tail."""


@dataclass(frozen=True, slots=True)
class Service:
    """One running subprocess and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check_alive(self) -> None:
        """Raise ServiceDied if the process has exited."""
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise ServiceDied(f"{self.name} exited with {self.process.returncode}:\n{tail}")


def python(module: str, *args: str) -> list[str]:
    """Return the argv that runs one of our modules with this interpreter."""
    return [sys.executable, "-m", module, *args]


@contextlib.contextmanager
def service(name: str, argv: list[str], env: dict[str, str], log: Path) -> Iterator[Service]:
    """Run a subprocess for the block; then SIGTERM it, and SIGKILL it if it does not stop in time."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603  # our modules
    try:
        yield Service(name, process, log)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process: SIGTERM, then SIGKILL after STOP_S."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


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
