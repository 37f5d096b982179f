"""`make run`: Kafka (embedded unless KAFKA_BOOTSTRAP is set), the topics, the ingest on :8080; Ctrl-C stops all."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import FrameType

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from devenv.kafka import EmbeddedKafka, detach_and_die_with_parent
from devenv.topics import TopicSpec, ensure_topics

log = logging.getLogger("devenv.run")


class RunSettings(BaseSettings):
    """What `make run` reads from the environment (the ingest reads its own INGEST_* variables)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap: str | None = Field(None, validation_alias="KAFKA_BOOTSTRAP")
    raw_topic: str = Field("recording.callbacks.raw", validation_alias="INGEST_RAW_TOPIC")
    raw_topic_partitions: int = Field(6, ge=1, validation_alias="RAW_TOPIC_PARTITIONS")
    #: The raw topic is the replayable source of truth: keep it (-1 = no time limit).
    raw_topic_retention_ms: int = Field(-1, validation_alias="RAW_TOPIC_RETENTION_MS")
    ingest_port: int = Field(8080, validation_alias="INGEST_PORT")
    ready_timeout_s: float = 30.0
    stop_timeout_s: float = 15.0

    def topics(self) -> list[TopicSpec]:
        """Return the topics the system needs."""
        configs = {"retention.ms": str(self.raw_topic_retention_ms), "cleanup.policy": "delete"}
        return [TopicSpec(self.raw_topic, partitions=self.raw_topic_partitions, configs=configs)]


class Stop(Exception):
    """SIGINT or SIGTERM arrived: unwind and stop everything in reverse order."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # Once: a second Ctrl-C must not interrupt the (bounded) clean-up the first one started.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stop(signal.Signals(signum).name)


@contextlib.contextmanager
def child(
    name: str, argv: list[str], env: dict[str, str], *, stop_timeout_s: float
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a child process in its own session (Ctrl-C is ours to forward); SIGTERM it on the way out."""
    process = subprocess.Popen(argv, env=env, preexec_fn=detach_and_die_with_parent)  # noqa: S603  # our argv
    try:
        yield process
    finally:
        if process.poll() is None:
            log.info("stopping %s (SIGTERM, drains in-flight requests)", name)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs: killing it", name, stop_timeout_s)
                process.kill()
                process.wait(stop_timeout_s)
        log.info("%s exited with %s", name, process.returncode)


def wait_ready(url: str, process: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    """Poll `url` until it answers 200; fail if the process exits or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode} before it was ready")
        # HTTPError (a 503 from /readyz) is a URLError too: not ready yet.
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError),
            urllib.request.urlopen(url, timeout=1) as response,  # noqa: S310  # a fixed loopback URL
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} was not ready within {timeout_s}s")


def ingest_env(settings: RunSettings, bootstrap: str) -> dict[str, str]:
    """Return the ingest's environment: the caller's, plus the cluster, the port and, if needed, unsigned mode."""
    env = {**os.environ, "INGEST_BOOTSTRAP_SERVERS": bootstrap, "INGEST_PORT": str(settings.ingest_port)}
    env.setdefault("INGEST_HOST", "127.0.0.1")
    if not (env.get("INGEST_AGORA_SECRETS") or env.get("INGEST_ANYRTC_SECRETS")):
        env["INGEST_ALLOW_UNSIGNED"] = "true"
        log.warning(
            "NO SECRETS SET: the ingest ACCEPTS UNSIGNED CALLBACKS (INGEST_ALLOW_UNSIGNED=true, local development "
            "only). Set INGEST_AGORA_SECRETS / INGEST_ANYRTC_SECRETS to verify signatures."
        )
    return env


def run(settings: RunSettings) -> None:
    """Start everything, print the addresses, and block until a signal; the context managers stop it all."""
    with contextlib.ExitStack() as stack:
        if settings.kafka_bootstrap:
            bootstrap, where = settings.kafka_bootstrap, "KAFKA_BOOTSTRAP (external)"
        else:
            log.info("KAFKA_BOOTSTRAP is unset: starting the embedded Kafka broker")
            kafka = stack.enter_context(EmbeddedKafka())
            bootstrap, where = kafka.bootstrap_servers, f"embedded, ready in {kafka.startup_seconds:.1f}s"
        asyncio.run(ensure_topics(bootstrap, settings.topics()))
        env = ingest_env(settings, bootstrap)
        ingest = stack.enter_context(
            child("ingest", [sys.executable, "-m", "ingest"], env, stop_timeout_s=settings.stop_timeout_s)
        )
        base = f"http://{env['INGEST_HOST']}:{settings.ingest_port}"
        wait_ready(f"{base}/readyz", ingest, timeout_s=settings.ready_timeout_s)
        _print_banner(bootstrap, where, base, settings)
        while ingest.poll() is None:
            time.sleep(0.2)  # a signal interrupts this with Stop
        raise RuntimeError(f"the ingest exited unexpectedly with {ingest.returncode}")


def _print_banner(bootstrap: str, where: str, base: str, settings: RunSettings) -> None:
    lines = [
        f"kafka      {bootstrap}  ({where}); raw topic {settings.raw_topic} x{settings.raw_topic_partitions}",
        f"ingest     {base}/v1/callbacks/agora  {base}/v1/callbacks/anyrtc",
        f"probes     {base}/healthz  {base}/readyz  {base}/metrics",
        "processor  not started: it is not part of the tree yet",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


def main() -> int:
    """Entry point of `python -m devenv.run`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        run(RunSettings())
    except Stop as stop:
        log.info("%s received: everything stopped", stop)
        return 0
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
