"""`make demo` against a real ingest and worker: it sends its mix, waits, and finds live state == replay."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.support import GAP_TIMEOUT_MS, SECRET, running_system

pytestmark = pytest.mark.kafka

RECORDINGS = 6
DEMO_S = 60


def run_demo(ingest_port: int, web_port: int, secret: bytes, sent_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m devenv.demo` as `make demo` does, pointed at this test's services (bounded)."""
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("INGEST_", "PROCESSOR_", "DEMO_"))},
        "INGEST_PORT": str(ingest_port),
        "PROCESSOR_WEB_PORT": str(web_port),
        "INGEST_AGORA_SECRETS": secret.decode(),
        "DEMO_GAP_TIMEOUT_MS": str(GAP_TIMEOUT_MS),  # the test worker's
        "DEMO_RECORDINGS": str(RECORDINGS),
        "DEMO_SEED": "11",
        "DEMO_SENT_DIR": str(sent_dir),
    }
    argv = [sys.executable, "-m", "devenv.demo"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=DEMO_S, check=False)  # noqa: S603


def sent_files(folder: Path) -> list[Path]:
    """Return the files of acknowledged bodies the demo wrote."""
    return list(folder.glob("sent-*.jsonl"))


def count_lines(path: Path) -> int:
    """Return how many bodies a file of acknowledged bodies holds."""
    return len(path.read_bytes().splitlines())


@pytest.mark.timeout(150)
async def test_the_demo_sends_its_mix_and_finds_every_recording_agreeing_with_the_replay(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    async with running_system(bootstrap_servers, tmp_path) as system:
        ports = system.ingest_port, system.settings.web_port
        refused = await asyncio.to_thread(run_demo, *ports, b"not-the-ingests-secret", tmp_path)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "refuses the demo's signature" in refused.stderr
        assert not sent_files(tmp_path)  # nothing was sent

        done = await asyncio.to_thread(run_demo, *ports, SECRET, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert f"{RECORDINGS}/{RECORDINGS} recordings agree: live state == replay --summary" in done.stdout
        heading = next(index for index, line in enumerate(lines) if line.startswith("sid "))
        rows = lines[heading + 1 : heading + 1 + RECORDINGS]
        assert len({row.split()[0] for row in rows}) == RECORDINGS
        assert any(" exited_abnormally " in row for row in rows)  # the fatal exit
        [sent] = sent_files(tmp_path)
        acknowledged = re.search(r"acknowledged (\d+),", done.stdout)
        assert acknowledged is not None, done.stdout
        assert int(acknowledged[1]) == count_lines(sent) > RECORDINGS * 10
        assert f"python -m processor replay {sent}" in done.stdout
