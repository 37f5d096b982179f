"""Fault-injection helpers: read a topic to its end, compare what was acknowledged with the log, check event ids."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from devenv.processes import stop
from processor.rawlog import topic_partitions
from tests.ingest_support import wait_until
from tests.integration.worker_support import Worker, publish

#: Seconds a read of a whole topic may take once the broker answers.
READ_S = 30


async def end_offsets(bootstrap_servers: str, topic: str) -> int:
    """Return how many records the topic holds now (the sum of its partitions' end offsets)."""
    partitions = await topic_partitions(bootstrap_servers, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def wait_for_records(bootstrap_servers: str, topic: str, count: int, *, timeout_s: float) -> None:
    """Return once the topic holds at least `count` records (bounded)."""

    async def enough() -> bool:
        return await end_offsets(bootstrap_servers, topic) >= count

    await wait_until(enough, timeout_s=timeout_s, every_s=0.1)


async def read_to_end(bootstrap_servers: str, topic: str, *, isolation_level: str = "read_committed") -> list[bytes]:
    """Return every value of the topic up to its end at the time of the call, partition after partition.

    Within a partition (so within a sid, the key) the order is the log's: what the worker folds. Read committed by
    default, as a downstream consumer of an exactly-once worker reads; read_uncommitted sees aborted writes too.
    """
    partitions = await topic_partitions(bootstrap_servers, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation_level,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        consumer.assign(partitions)
        # Explicit offsets: a seek_to_beginning() can lose the race with the assignment's own offset reset.
        starts, ends = await consumer.beginning_offsets(partitions), await consumer.end_offsets(partitions)
        async with asyncio.timeout(READ_S):
            for tp in partitions:
                consumer.seek(tp, starts[tp])
                while await consumer.position(tp) < ends[tp]:
                    batch = await consumer.getmany(tp, timeout_ms=500)
                    values += [m.value for m in batch.get(tp, []) if m.offset < ends[tp] and m.value is not None]
    finally:
        await consumer.stop()
    return values


async def publish_paced(
    bootstrap_servers: str, topic: str, bodies: list[bytes], *, until: asyncio.Event, per_second: float, chunk: int = 10
) -> None:
    """Publish bodies keyed by sid, in order, at about `per_second` until `until` is set, then the rest at once.

    The last chunk waits for `until`: however slow the machine, the load is still going on when it is set.
    """
    for start in range(0, len(bodies), chunk):
        if start + chunk >= len(bodies):
            await until.wait()
        await publish(bootstrap_servers, topic, bodies[start : start + chunk])
        if not until.is_set():
            await asyncio.sleep(chunk / per_second)


def acknowledged(sent: Path) -> list[bytes]:
    """Return the bodies the simulator got a 200 for, in the order it got them."""
    return sent.read_bytes().splitlines()


def missing(acked: Iterable[bytes], logged: Iterable[bytes]) -> list[bytes]:
    """Return the acknowledged bodies that the log does not hold (byte for byte, counting repeats)."""
    return sorted((Counter(acked) - Counter(logged)).elements())


@dataclass
class Supervised:
    """One worker kept running as Kubernetes keeps a pod: whenever it exits it is started again with the same
    environment, so the same PROCESSOR_GROUP_INSTANCE_ID and PROCESSOR_WEB_PORT (a static member keeps its URL)."""

    env: dict[str, str]
    log: Path
    #: Seconds between an exit and the next start (Kubernetes' first back-off is 10 s; a test has less time).
    restart_delay_s: float = 0.5
    #: (wall-clock time, exit code) of each exit, in order.
    exits: list[tuple[float, int]] = field(default_factory=list)
    #: Wall-clock time of each start, in order.
    starts: list[float] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the worker's web address (fixed: the environment names its port)."""
        return f"http://127.0.0.1:{self.env['PROCESSOR_WEB_PORT']}"

    @property
    def worker(self) -> Worker:
        """Return the current process as a Worker."""
        assert self.process is not None
        return Worker(self.url, self.process)

    def check_alive(self) -> None:
        """Never fail: an exited worker is started again (the readers of tests.integration.worker_support ask)."""

    def start(self) -> None:
        """Start the worker (again)."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # our own module, fixed arguments
                [sys.executable, "-m", "processor", "worker"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.starts.append(time.time())

    async def keep_running(self) -> None:
        """Start the worker again whenever it exits, until cancelled."""
        while True:
            await asyncio.sleep(0.05)
            assert self.process is not None
            if self.process.poll() is not None:
                self.exits.append((time.time(), self.process.returncode))
                await asyncio.sleep(self.restart_delay_s)
                self.start()


@contextlib.asynccontextmanager
async def supervised(env: dict[str, str], log: Path) -> AsyncIterator[Supervised]:
    """Run a worker restarted whenever it exits (`env` must name PROCESSOR_WEB_PORT); stop it at the end."""
    assert "PROCESSOR_WEB_PORT" in env, "a static member restarts on the same port"
    keeper = Supervised(env, log)
    keeper.start()
    task = asyncio.create_task(keeper.keep_running())
    try:
        yield keeper
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if keeper.process is not None:
            await asyncio.to_thread(stop, keeper.process)
        tail = await asyncio.to_thread(log.read_text, errors="replace")
        print(tail[-3000:])  # shown only if the test fails
