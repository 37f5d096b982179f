"""Our services as subprocesses on loopback (benchmarks and tests): started with a log, stopped with bounds."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: A stopped process gets this long after SIGTERM (it finishes what is in flight) before SIGKILL.
STOP_S = 20


class ServiceDied(RuntimeError):
    """A subprocess exited while it was needed; the message carries its log's tail."""


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


@contextlib.contextmanager
def service(name: str, argv: list[str], env: dict[str, str], log: Path) -> Iterator[Service]:
    """Run a subprocess for the block, its output to `log`; then stop it."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603  # our modules
    try:
        yield Service(name, process, log)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], *, timeout_s: float = STOP_S) -> None:
    """Stop a process, as Kubernetes would: SIGTERM, then SIGKILL if it has not exited after `timeout_s`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def ingest_env(**settings: str) -> dict[str, str]:
    """Return the environment of a `python -m ingest` on loopback: ours without any INGEST_* variable, plus
    `settings` (INGEST_* names without the prefix, e.g. `raw_topic="..."`)."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("INGEST_")}
    return {
        **clean,
        "INGEST_HOST": "127.0.0.1",
        **{f"INGEST_{name.upper()}": value for name, value in settings.items()},
    }
