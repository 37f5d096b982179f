"""What Linux says of a benchmark's processes: resident memory, CPU seconds, busy cores, bytes of files on disk."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

#: Clock ticks per second of /proc/<pid>/stat's utime and stime.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Memory:
    """One reading of /proc/<pid>/status, in bytes: resident (anonymous + file-backed) and its peak so far."""

    rss: int
    anon: int
    file: int
    peak: int


def memory(pid: int) -> Memory:
    """Read VmRSS, RssAnon, RssFile and VmHWM of a process (Linux reports kB)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return Memory(fields["VmRSS"], fields["RssAnon"], fields["RssFile"], fields["VmHWM"])


def settled_memory(pid: int, *, settle_s: float, samples: int, every_s: float = 0.5) -> tuple[Memory, list[int]]:
    """Wait `settle_s`, then read the memory `samples` times `every_s` apart; return the median reading and all RSS.

    The median of RSS (and of its parts) smooths a transient allocation of the timer or a metrics scrape.
    """
    time.sleep(settle_s)
    readings = []
    for index in range(samples):
        if index:
            time.sleep(every_s)
        readings.append(memory(pid))

    def median(name: str) -> int:
        return int(statistics.median(getattr(reading, name) for reading in readings))

    peak = max(reading.peak for reading in readings)
    return Memory(median("rss"), median("anon"), median("file"), peak), [reading.rss for reading in readings]


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds a process has used (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces: skip past its ")"
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> tuple[float, float]:
    """Return (busy, elapsed) CPU seconds of all cores since boot, from /proc/stat's first line."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user time
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def disk_bytes(root: Path) -> dict[str, int]:
    """Return the apparent bytes of the files under `root`, by kind: RocksDB's tables, write-ahead logs, the rest."""
    kinds = {"sst": 0, "wal": 0, "other": 0}
    for path in root.rglob("*"):
        if path.is_file():
            kind = "sst" if path.suffix == ".sst" else "wal" if path.suffix == ".log" else "other"
            kinds[kind] += path.stat().st_size
    return kinds
