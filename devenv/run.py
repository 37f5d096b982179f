"""`make run`: Kafka (embedded unless KAFKA_BOOTSTRAP is set), the topics, processor and ingest; Ctrl-C stops all."""

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
from pathlib import Path
from types import FrameType

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from devenv.kafka import REPO_ROOT, EmbeddedKafka, detach_and_die_with_parent
from devenv.topics import TopicSpec, ensure_topics
from processor.settings import ENV_PREFIX, ProcessorSettings, explain

#: The worker settings `make run` decides; the worker reads every other PROCESSOR_* variable itself.
PROCESSOR_OVERRIDES = ("bootstrap_servers", "raw_topic", "partitions", "data_dir", "web_host", "web_port")

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
    processor_port: int = Field(6066, validation_alias="PROCESSOR_WEB_PORT")
    processor_data_dir: Path = Field(REPO_ROOT / ".cache" / "processor-data", validation_alias="PROCESSOR_DATA_DIR")
    ready_timeout_s: float = 30.0
    #: A Faust worker creates its changelog topics and joins its group before its web server answers.
    processor_ready_timeout_s: float = 60.0
    stop_timeout_s: float = 15.0

    def processor(self, bootstrap: str) -> ProcessorSettings:
        """Return the worker's settings: the caller's PROCESSOR_* variables, tied to this run's cluster and ports."""
        try:
            return ProcessorSettings(
                bootstrap_servers=bootstrap,
                # The ingest writes INGEST_RAW_TOPIC; ticks are co-partitioned with it, so both share one count.
                raw_topic=self.raw_topic,
                partitions=self.raw_topic_partitions,
                data_dir=self.processor_data_dir,
                web_host="127.0.0.1",
                web_port=self.processor_port,
            )
        except ValidationError as exc:
            raise RuntimeError(f"invalid processor settings:\n{explain(exc)}") from None

    def topics(self, processor: ProcessorSettings) -> list[TopicSpec]:
        """Return the topics the system needs: the processor's plans, the raw topic kept forever."""
        raw_configs = {"retention.ms": str(self.raw_topic_retention_ms), "cleanup.policy": "delete"}
        return [
            TopicSpec(
                plan.name,
                partitions=plan.partitions,
                configs={**plan.configs, **raw_configs} if plan.name == self.raw_topic else plan.configs,
            )
            for plan in processor.topic_specs()
        ]


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
            log.info("stopping %s (SIGTERM: it finishes what is in flight)", name)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs: killing it", name, stop_timeout_s)
                process.kill()
                process.wait(stop_timeout_s)
        log.info("%s exited with %s", name, process.returncode)


def status_of(url: str) -> int | None:
    """Return the HTTP status a GET of `url` answers, or None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310  # a fixed loopback URL
            return int(response.status)
    except urllib.error.HTTPError as error:  # a 4xx/5xx is an answer too
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def wait_ready(
    url: str, process: subprocess.Popen[bytes], *, timeout_s: float, status: int = 200, interval_s: float = 0.1
) -> None:
    """Poll `url` until it answers `status`; fail if the process exits or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode} before it was ready")
        if status_of(url) == status:  # a 503 from /readyz: not ready yet
            return
        time.sleep(interval_s)
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


def processor_env(processor: ProcessorSettings) -> dict[str, str]:
    """Return the worker's environment: the caller's, plus the settings `make run` decides."""
    overrides = {f"{ENV_PREFIX}{name.upper()}": str(getattr(processor, name)) for name in PROCESSOR_OVERRIDES}
    return {**os.environ, **overrides}


def start_processor(
    stack: contextlib.ExitStack, processor: ProcessorSettings, settings: RunSettings
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m processor worker` on `stack` and wait until it serves; return it and its web address."""
    argv = [sys.executable, "-m", "processor", "worker"]
    env = processor_env(processor)
    worker = stack.enter_context(child("processor", argv, env, stop_timeout_s=settings.stop_timeout_s))
    query = f"http://{processor.web_host}:{processor.web_port}"
    # The query API answers an unknown sid with 404 once the worker has its partitions (a 500 before: the table
    # router has no assignment yet, and logs each such probe, hence the slower polling).
    timeout_s = settings.processor_ready_timeout_s
    wait_ready(f"{query}/recordings/none/", worker, timeout_s=timeout_s, status=404, interval_s=0.5)
    return worker, query


def run(settings: RunSettings) -> None:
    """Start everything, print the addresses, and block until a signal; the context managers stop it all."""
    with contextlib.ExitStack() as stack:  # unwinds in reverse: ingest, then processor, then Kafka
        if settings.kafka_bootstrap:
            bootstrap, where = settings.kafka_bootstrap, "KAFKA_BOOTSTRAP (external)"
        else:
            log.info("KAFKA_BOOTSTRAP is unset: starting the embedded Kafka broker")
            kafka = stack.enter_context(EmbeddedKafka())
            bootstrap, where = kafka.bootstrap_servers, f"embedded, ready in {kafka.startup_seconds:.1f}s"
        processor = settings.processor(bootstrap)
        asyncio.run(ensure_topics(bootstrap, settings.topics(processor)))
        worker, query = start_processor(stack, processor, settings)
        stop_s = settings.stop_timeout_s
        env = ingest_env(settings, bootstrap)
        ingest = stack.enter_context(child("ingest", [sys.executable, "-m", "ingest"], env, stop_timeout_s=stop_s))
        base = f"http://{env['INGEST_HOST']}:{settings.ingest_port}"
        wait_ready(f"{base}/readyz", ingest, timeout_s=settings.ready_timeout_s)
        _print_banner(bootstrap, where, base, query, processor)
        while ingest.poll() is None and worker.poll() is None:
            time.sleep(0.2)  # a signal interrupts this with Stop
        name, code = (
            ("ingest", ingest.returncode) if ingest.returncode is not None else ("processor", worker.returncode)
        )
        raise RuntimeError(f"the {name} exited unexpectedly with {code}")


def _print_banner(bootstrap: str, where: str, base: str, query: str, processor: ProcessorSettings) -> None:
    topics = ", ".join(plan.name for plan in processor.topic_specs())
    lines = [
        f"kafka      {bootstrap}  ({where}); topics x{processor.partitions}: {topics}",
        f"ingest     {base}/v1/callbacks/agora  {base}/v1/callbacks/anyrtc",
        f"probes     {base}/healthz  {base}/readyz  {base}/metrics",
        f"processor  query {query}/recordings/<sid>/  metrics {query}/metrics  (app id {processor.app_id})",
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
