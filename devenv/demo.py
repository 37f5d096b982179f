"""`make demo`: noisy simulated recordings through the running `make run`, then live state checked against a replay."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import orjson
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from devenv.kafka import REPO_ROOT
from ingest.signature import sign
from processor.core.reorder import DEFAULT_GAP_TIMEOUT_MS, ReorderPolicy
from processor.replay import replay
from processor.simulate import Options, Tally, simulate
from processor.simulation import SessionShape, random_shape

#: Exit code when `make run` is not up (or refuses our signature): nothing was sent.
NOT_RUNNING = 2
#: The console's address check (spec: "What real senders do"): verified, answered 200, never published.
ADDRESS_CHECK = orjson.dumps(
    {
        "noticeId": "demo-probe",
        "productId": 3,
        "eventType": 1,
        "notifyMs": 0,
        "payload": {"cname": "test_webhook", "uid": "12121212", "sid": "", "sequence": 0, "sendts": 0, "details": {}},
    }
)
#: Below the gap timeout, so a shuffled (not dropped) callback arrives before its hole is skipped, live and in the
#: replay alike (see tests/e2e/test_live_equals_replay.py).
JITTER_MS = 800
Snapshots = dict[str, dict[str, Any]]


class DemoSettings(BaseSettings):
    """Where `make run` listens and how it is configured (the same variables it reads), and the demo's own knobs."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    ingest_port: int = Field(8080, validation_alias="INGEST_PORT")
    processor_port: int = Field(6066, validation_alias="PROCESSOR_WEB_PORT")
    #: Signs the callbacks when set: the first of the secrets `make run`'s ingest verifies.
    agora_secrets: SecretStr | None = Field(None, validation_alias="INGEST_AGORA_SECRETS")
    #: The worker's gap timeout: how long a hole is waited for live; the replay is given the same.
    gap_timeout_ms: int = Field(
        DEFAULT_GAP_TIMEOUT_MS, gt=0, validation_alias=AliasChoices("DEMO_GAP_TIMEOUT_MS", "PROCESSOR_GAP_TIMEOUT_MS")
    )
    recordings: int = Field(20, ge=4, validation_alias="DEMO_RECORDINGS")
    #: Callbacks per second at most, retries included.
    rate: float = Field(500.0, gt=0, validation_alias="DEMO_RATE")
    #: None draws a new seed, hence new sids: the recordings of an earlier demo are never touched again.
    seed: int | None = Field(None, validation_alias="DEMO_SEED")
    #: Waited for beyond the gap timeout: ticks, batches and the state's acknowledgements.
    settle_margin_s: float = Field(20.0, gt=0, validation_alias="DEMO_SETTLE_MARGIN_S")
    #: Where the acknowledged bodies are written, one file per run, for `replay`.
    sent_dir: Path = Field(REPO_ROOT / ".cache" / "demo", validation_alias="DEMO_SENT_DIR")

    @property
    def ingest(self) -> str:
        """Return the ingest's base URL."""
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def processor(self) -> str:
        """Return the processor's base URL (query API and metrics)."""
        return f"http://127.0.0.1:{self.processor_port}"

    def secret(self) -> bytes | None:
        """Return the secret to sign with, if `make run`'s ingest has one."""
        if self.agora_secrets is None:
            return None
        first = self.agora_secrets.get_secret_value().split(",")[0].strip()
        return first.encode() or None


class Console:
    """Lines for the reader; progress rewrites one line in a terminal, elsewhere it is printed when it changes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.rewriting = stream.isatty()
        self.pending = False
        self.last_news = ""

    def line(self, text: str) -> None:
        """Print a line (ending the progress line, if any)."""
        if self.pending:
            self.stream.write("\n")
            self.pending = False
        print(text, file=self.stream, flush=True)

    def progress(self, news: str, clock: str) -> None:
        """Show how far a wait has come: `news` (what changed) and `clock` (how long it has taken)."""
        if self.rewriting:
            self.stream.write(f"\r\033[K{news}; {clock}")
            self.stream.flush()
            self.pending = True
        elif news != self.last_news:
            self.line(f"{news}; {clock}")
        self.last_news = news


class NotRunning(RuntimeError):
    """`make run` is not up, not ready, or refuses the demo's signature."""


#: The table's columns: a heading and how to read it from a state.
COLUMNS: dict[str, Callable[[dict[str, Any]], object]] = {
    "sid": lambda state: state["sid"],
    "status": lambda state: f"{state['status']} {state['status_name']}",
    "failovers": lambda state: state["failovers"],
    "discontinuities": lambda state: state["discontinuities"],
    "files": lambda state: len(state["files"]),
    "missing sequences": lambda state: _missing(state["missing_sequences"]),
}


def mix(seed: int, count: int) -> tuple[SessionShape, ...]:
    """Return `count` plausible recordings, the first four sure to fail fatally, break, and fail over both ways."""
    rng = random.Random(seed)  # noqa: S311  # a seeded simulation, not cryptography
    drawn = [random_shape(rng) for _ in range(count)]
    sure = [
        replace(drawn[0], fatal_error=True),
        replace(drawn[1], interruptions=2),
        replace(drawn[2], failovers=1, restart_sequence_on_failover=True),
        replace(drawn[3], failovers=2, restart_sequence_on_failover=False),
    ]
    return (*sure, *drawn[len(sure) :])


async def check_running(session: aiohttp.ClientSession, settings: DemoSettings, secret: bytes | None) -> None:
    """Raise NotRunning unless both services answer ready and the ingest accepts our signature."""
    for name, url in (("ingest", settings.ingest), ("processor", settings.processor)):
        try:
            async with session.get(f"{url}/readyz") as response:
                ready = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            raise NotRunning(
                f"nothing answers at {url} (the {name}): start `make run` in another terminal, wait for the "
                "addresses it prints, then run `make demo` again"
            ) from None
        if not ready:
            raise NotRunning(f"the {name} at {url} is not ready yet (/readyz): try again in a few seconds")
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["Agora-Signature-V2"] = sign(ADDRESS_CHECK, secret)
    async with session.post(f"{settings.ingest}/v1/callbacks/agora", data=ADDRESS_CHECK, headers=headers) as answer:
        if answer.status == 401:
            raise NotRunning(
                "the ingest refuses the demo's signature: give `make demo` the INGEST_AGORA_SECRETS that `make run` has"
            )


def expected_states(sent: Path, gap_timeout_ms: int) -> Snapshots:
    """Return `replay --summary` of the acknowledged bodies, by sid, as the query API answers them (JSON)."""
    with sent.open("rb") as lines:
        fold, _ = replay(
            lines, policy=ReorderPolicy(gap_timeout_ms=gap_timeout_ms), on_derived=None, on_broken=sys.stderr
        )
    return {state.sid: json.loads(state.model_dump_json()) for state in fold.snapshots()}


async def live_states(session: aiohttp.ClientSession, processor: str, sids: list[str]) -> dict[str, Any]:
    """Return what the query API answers for each sid (None for a 404 or a 503)."""

    async def one(sid: str) -> Any:
        async with session.get(f"{processor}/recordings/{sid}/") as response:
            return await response.json() if response.status == 200 else None

    return dict(zip(sids, await asyncio.gather(*map(one, sids)), strict=True))


def differences(expected: Snapshots, actual: Mapping[str, Any]) -> dict[str, object]:
    """Return, per sid, the fields (expected, actual) that differ (or what was answered instead of a state)."""
    out: dict[str, object] = {}
    for sid, state in expected.items():
        got = actual.get(sid)
        if not isinstance(got, dict):
            out[sid] = got
        elif diff := {key: (value, got.get(key)) for key, value in state.items() if got.get(key) != value}:
            out[sid] = diff
    return out


async def settle(
    session: aiohttp.ClientSession,
    settings: DemoSettings,
    expected: Snapshots,
    console: Console,
) -> dict[str, Any]:
    """Poll the query API until every recording agrees with the replay, or the gap timeout and margin are over."""
    budget_s = settings.gap_timeout_ms / 1000 + settings.settle_margin_s
    started = time.monotonic()
    sids = sorted(expected)
    while True:
        live = await live_states(session, settings.processor, sids)
        agree = len(expected) - len(differences(expected, live))
        held = sum(state.get("buffered", 0) for state in live.values() if state)
        elapsed = time.monotonic() - started
        console.progress(
            f"settling: {agree}/{len(expected)} recordings agree, {held} callbacks held behind missing numbers "
            f"(skipped after the worker's {settings.gap_timeout_ms / 1000:g} s gap timeout)",
            f"{elapsed:.0f} s of at most {budget_s:.0f} s",
        )
        if agree == len(expected) or elapsed >= budget_s:
            return live
        await asyncio.sleep(1.0)


def _missing(numbers: list[int]) -> str:
    shown = ",".join(map(str, numbers[:6]))
    return f"{shown},… ({len(numbers)} in all)" if len(numbers) > 6 else shown or "-"


def table(live: Mapping[str, Any]) -> str:
    """Return the recordings the query API answered as an aligned text table, by sid."""
    unanswered = ["(not answered)"] + [""] * (len(COLUMNS) - 2)
    cells = [list(COLUMNS)]
    for sid in sorted(live):
        state = live[sid]
        cells.append([str(read(state)) for read in COLUMNS.values()] if state else [sid, *unanswered])
    widths = [max(len(line[column]) for line in cells) for column in range(len(COLUMNS))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells)
    return "\n".join(line.rstrip() for line in lines)


def next_steps(settings: DemoSettings, sent: Path, gap_timeout_ms: int) -> str:
    """Return where to look next."""
    return "\n".join(
        [
            "where to look next:",
            f"  metrics     {settings.ingest}/metrics  {settings.processor}/metrics",
            f"  query API   {settings.processor}/recordings/<sid>/  {settings.processor}/recordings/?status=20",
            "  topics      recording.events, recording.state (compacted), recording.alerts, recording.dlq on the "
            "broker `make run` printed",
            f"  replay      python -m processor replay {sent} --summary --gap-timeout-ms {gap_timeout_ms}",
        ]
    )


async def run(settings: DemoSettings, console: Console) -> int:
    """Send the mix, wait for the processor, print the table and the check; return the exit code."""
    seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**31)
    secret = settings.secret()
    sent = settings.sent_dir / f"sent-{seed}.jsonl"
    sent.parent.mkdir(parents=True, exist_ok=True)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await check_running(session, settings, secret)
        options = Options(
            url=f"{settings.ingest}/v1/callbacks/agora",
            recordings=settings.recordings,
            sent=sent,
            secret=secret,
            seed=seed,
            rate=settings.rate,
            jitter_ms=JITTER_MS,
            duplicates=0.2,
            drops=0.05,
            shapes=mix(seed, settings.recordings),
        )
        console.line(
            f"sending {settings.recordings} recordings (seed {seed}, {'signed' if secret else 'unsigned'}): shuffled "
            f"within {JITTER_MS} ms, 20 % resent, 5 % lost, failovers, a fatal exit, slice discontinuities"
        )
        tally: Tally = await simulate(options)
        console.line(tally.line())
        expected = expected_states(sent, settings.gap_timeout_ms)
        live = await settle(session, settings, expected, console)
    console.line(table(live))
    wrong = differences(expected, live)
    agree = len(expected) - len(wrong)
    verdict = f"{agree}/{len(expected)} recordings agree: live state == replay --summary of the acknowledged bodies"
    console.line(
        verdict if not wrong else f"{verdict[: verdict.index(':')]}; these differ (expected, live): {json.dumps(wrong)}"
    )
    console.line(next_steps(settings, sent, settings.gap_timeout_ms))
    return 0 if not wrong else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m devenv.demo`."""
    argparse.ArgumentParser(prog="python -m devenv.demo", description=__doc__).parse_args(argv)
    try:
        return asyncio.run(run(DemoSettings(), Console(sys.stdout)))
    except NotRunning as problem:
        print(f"make demo: {problem}", file=sys.stderr)
        return NOT_RUNNING


if __name__ == "__main__":
    sys.exit(main())
