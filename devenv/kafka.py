"""A real single-node Apache Kafka broker (KRaft) as a plain Java process, for tests and `make run`."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Filled by `make kafka-jars` (deploy/kafka/pom.xml), ignored by git.
DEFAULT_JARS_DIR = REPO_ROOT / ".cache" / "kafka-jars"

#: A small heap, the serial collector and the C1 compiler only: a test broker starts in ~1.5 s and stays
#: under ~370 MB RSS (measured, see the broker notes); throughput is not what it is for.
JVM_OPTS = ("-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
"""


class KafkaStartError(RuntimeError):
    """The broker did not come up; the message carries the tail of its log."""


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def new_cluster_id() -> str:
    """Return a random cluster id in Kafka's Uuid text form (URL-safe base64, no padding)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # Kafka's own Uuid.randomUuid() never starts with "-", which a CLI would take for an option.
        if not text.startswith("-"):
            return text


def server_properties(*, port: int, controller_port: int, data_dir: Path) -> str:
    """Return a single-node broker+controller configuration bound to loopback only."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        # One node: every internal topic must fit on it.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # The default 3 s delay makes every fresh consumer group wait 3 s before its first assignment.
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def detach_and_die_with_parent() -> None:
    """Run in the child before exec: own session (Ctrl-C is ours to forward), SIGTERM if we die."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


async def metadata_answers(bootstrap_servers: str, *, timeout_s: float = 2.0) -> bool:
    """Return whether one metadata request to the cluster succeeds within the timeout."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        return bool(cluster.get("brokers"))
    except Exception:  # any failure means "not yet"
        return False
    finally:
        await admin.close()


class EmbeddedKafka:
    """Start, wait for and stop one KRaft broker on free loopback ports, in a temporary directory."""

    def __init__(
        self,
        *,
        jars_dir: Path = DEFAULT_JARS_DIR,
        port: int | None = None,
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 10.0,
        log_level: str = "INFO",
    ) -> None:
        self.jars_dir = jars_dir
        self.port = port or free_port()
        self.controller_port = free_port()
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.log_level = log_level
        self.workdir: Path | None = None
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._launched_at = 0.0

    @property
    def bootstrap_servers(self) -> str:
        """Return the `host:port` clients connect to."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> EmbeddedKafka:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Write the configuration, format the storage, launch the broker and wait until it answers."""
        if not any(self.jars_dir.glob("kafka_2.13-*.jar")):
            raise KafkaStartError(f"no Kafka jars in {self.jars_dir}: run `make kafka-jars` first")
        self.workdir = Path(tempfile.mkdtemp(prefix="embedded-kafka-"))
        try:
            config = self._write_config(self.workdir)
            self._format_storage(self.workdir, config)
            began = time.monotonic()
            self._launch(self.workdir, config)
            self._wait_until_ready(self.workdir, deadline=began + self.start_timeout_s)
            self.startup_seconds = time.monotonic() - began
        except BaseException:
            self.stop()
            raise
        log.info("kafka ready on %s after %.2fs", self.bootstrap_servers, self.startup_seconds)

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after a bound) and remove its directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused JVM would not act on SIGTERM
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("kafka did not stop within %.1fs: killing it", self.stop_timeout_s)
                process.kill()
                process.wait(timeout=self.stop_timeout_s)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing is answered or acknowledged."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused broker carry on (SIGCONT)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Kill the broker outright (SIGKILL), as a crash would; its data directory stays for `restart`."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=self.stop_timeout_s)

    def restart(self, *, wait: bool = True) -> None:
        """Launch a killed broker again on the same ports and data directory; by default, wait until it answers.

        The broker dies with the thread that launches it (PR_SET_PDEATHSIG is per thread): from a coroutine, call
        `restart(wait=False)` on the loop's thread, then `await asyncio.to_thread(broker.wait_until_ready)`.
        """
        if self.workdir is None:
            raise KafkaStartError("restart needs a broker that was started (and not stopped) before")
        if self.is_running():
            raise KafkaStartError("the broker is still running: kill it first")
        self._launched_at = time.monotonic()
        self._launch(self.workdir, self.workdir / "server.properties")
        if wait:
            self.wait_until_ready()

    def wait_until_ready(self) -> None:
        """Wait until the (re)launched broker answers metadata requests, at most `start_timeout_s` from its launch."""
        if self.workdir is None:
            raise KafkaStartError("the broker was never started")
        self._wait_until_ready(self.workdir, deadline=self._launched_at + self.start_timeout_s)
        log.info("kafka ready again on %s after %.2fs", self.bootstrap_servers, time.monotonic() - self._launched_at)

    def is_running(self) -> bool:
        """Return whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def _java(self, workdir: Path, main_class: str, *args: str) -> list[str]:
        log4j = f"-Dlog4j2.configurationFile={workdir / 'log4j2.properties'}"
        return ["java", *JVM_OPTS, log4j, "-cp", f"{self.jars_dir}/*", main_class, *args]

    def _write_config(self, workdir: Path) -> Path:
        (workdir / "log4j2.properties").write_text(
            _LOG4J2.format(log_file=workdir / "server.log", level=self.log_level)
        )
        config = workdir / "server.properties"
        config.write_text(
            server_properties(port=self.port, controller_port=self.controller_port, data_dir=workdir / "data")
        )
        return config

    def _format_storage(self, workdir: Path, config: Path) -> None:
        command = self._java(workdir, "kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(config))
        result = subprocess.run(  # noqa: S603  # fixed argv, no shell
            [*command, "--standalone"], capture_output=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise KafkaStartError(f"storage format failed: {result.stderr.decode(errors='replace')[-2000:]}")

    def _launch(self, workdir: Path, config: Path) -> None:
        with (workdir / "stdout.log").open("wb") as out:
            self._process = subprocess.Popen(  # noqa: S603  # fixed argv, no shell
                self._java(workdir, "kafka.Kafka", str(config)),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=detach_and_die_with_parent,  # setsid + pdeathsig only
            )

    def _wait_until_ready(self, workdir: Path, *, deadline: float) -> None:
        while time.monotonic() < deadline:
            if not self.is_running():
                raise KafkaStartError(f"kafka exited during start-up:\n{_log_tail(workdir)}")
            if _port_open(self.port) and asyncio.run(metadata_answers(self.bootstrap_servers)):
                return
            time.sleep(0.05)
        raise KafkaStartError(f"kafka did not answer within {self.start_timeout_s}s:\n{_log_tail(workdir)}")


def _log_tail(workdir: Path, lines: int = 40) -> str:
    chunks = []
    for name in ("stdout.log", "server.log"):
        path = workdir / name
        if path.exists():
            chunks.extend(path.read_text(errors="replace").splitlines()[-lines:])
    return "\n".join(chunks)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> None:
    """Start a broker, print its address and the start-up time, and stop it (a smoke check)."""
    logging.basicConfig(level=logging.INFO)
    with EmbeddedKafka() as kafka:
        print(f"bootstrap={kafka.bootstrap_servers} startup_seconds={kafka.startup_seconds:.2f}")


if __name__ == "__main__":
    main()
