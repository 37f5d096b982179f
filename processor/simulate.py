"""`python -m processor.simulate`: post noisy simulated NCS deliveries to a local ingest, log what it acknowledged."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import aiohttp
import orjson

from ingest.signature import sign
from processor.simulation import Body, SessionShape, deliver, generate_session, random_shape

#: Spec "Delivery": NCS resends at once, then at growing intervals, at most 3 retries.
RETRY_DELAYS_S = (0.0, 1.0, 3.0)
#: Spec "Delivery": without a 200 within 10 s NCS counts the attempt as failed.
NCS_DEADLINE_S = 10.0
#: This floods its target with synthetic recordings: it must never reach a real deployment.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
START_MS = 1_700_000_000_000
#: Recordings start at random times within this many ms each, as real ones do (not all at once).
START_SPREAD_MS_PER_RECORDING = 20_000


@dataclass(frozen=True, slots=True)
class Options:
    """What to simulate and where to send it."""

    url: str
    recordings: int
    sent: Path
    secret: bytes | None = None
    seed: int = 0
    #: Attempts per second, retries included; None for no limit.
    rate: float | None = 200.0
    concurrency: int = 16
    jitter_ms: int = 0
    duplicates: float = 0.0
    drops: float = 0.0
    failovers: bool = False
    retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S
    timeout_s: float = NCS_DEADLINE_S
    #: The shapes of the first recordings (the rest are drawn at random): to be sure a mix holds some cases.
    shapes: tuple[SessionShape, ...] = ()


@dataclass(slots=True)
class Tally:
    """What the simulator did: deliveries sent, acknowledged (200), retries made, deliveries given up."""

    sent: int = 0
    acknowledged: int = 0
    retried: int = 0
    failed: int = 0

    def line(self) -> str:
        """Return the one-line summary."""
        return (
            f"simulate: sent {self.sent}, acknowledged {self.acknowledged}, "
            f"retried {self.retried}, failed {self.failed}"
        )


class NotLoopback(ValueError):
    """The target URL is not on this machine."""


def check_loopback(url: str) -> None:
    """Refuse any URL that does not point at this machine."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or parts.hostname not in LOOPBACK_HOSTS:
        raise NotLoopback(
            f"refusing {url!r}: the simulator floods its target with synthetic callbacks, so it only posts to a "
            f"loopback http(s) address ({', '.join(sorted(LOOPBACK_HOSTS))}), never to a real deployment"
        )


def deliveries(options: Options) -> list[Body]:
    """Return every simulated delivery (jittered, duplicated, dropped), all recordings interleaved by arrival."""
    rng = random.Random(options.seed)  # noqa: S311  # a seeded simulation, not cryptography
    out: list[Body] = []
    for number in range(options.recordings):
        if number < len(options.shapes):
            shape = options.shapes[number]
        else:
            shape = random_shape(rng)
            shape = replace(shape, failovers=max(1, shape.failovers) if options.failovers else 0)
        start_ms = START_MS + rng.randrange(options.recordings * START_SPREAD_MS_PER_RECORDING)
        bodies = generate_session(rng, shape, start_ms=start_ms)
        out += deliver(
            rng, bodies, max_delay_ms=options.jitter_ms, duplicate_rate=options.duplicates, drop_rate=options.drops
        )
    out.sort(key=lambda body: int(body["notifyMs"]))  # stable: one recording's ties keep deliver()'s order
    return out


class RateLimiter:
    """Space calls evenly at `rate` per second (no bursts)."""

    def __init__(self, rate: float | None) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        """Return when the next call is allowed."""
        if not self._interval:
            return
        now = time.monotonic()
        at = max(now, self._next)
        self._next = at + self._interval  # no await before this line: the slot is taken atomically
        if at > now:
            await asyncio.sleep(at - now)


class Sender:
    """Post deliveries with bounded concurrency, one at a time per recording, retrying like NCS."""

    def __init__(self, session: aiohttp.ClientSession, options: Options, sent: IO[bytes]) -> None:
        self.session = session
        self.options = options
        self.sent = sent
        self.tally = Tally()
        self.limiter = RateLimiter(options.rate)

    async def send_all(self, bodies: list[Body]) -> Tally:
        """Post every body in order; a recording's next body waits for its previous one to be answered.

        Per recording this keeps the acknowledged order (the sent file) equal to the order the ingest wrote
        to the raw topic, which is the order the worker folds; recordings still overlap each other.
        """
        slots = asyncio.Semaphore(self.options.concurrency)
        previous: dict[str, asyncio.Task[None]] = {}
        async with asyncio.TaskGroup() as group:
            for body in bodies:
                await slots.acquire()
                sid = str(body["payload"]["sid"])
                previous[sid] = group.create_task(self._send_after(previous.get(sid), body, slots))
        return self.tally

    async def _send_after(self, before: asyncio.Task[None] | None, body: Body, slots: asyncio.Semaphore) -> None:
        try:
            if before is not None:
                await before
            await self._send(body)
        finally:
            slots.release()

    async def _send(self, body: Body) -> None:
        self.tally.sent += 1
        first = time.monotonic()
        for attempt, delay_s in enumerate((0.0, *self.options.retry_delays_s)):
            if attempt:
                self.tally.retried += 1
                await asyncio.sleep(delay_s)
                # Spec: NCS re-stamps notifyMs on every resend, so a retry has new bytes.
                body = {**body, "notifyMs": int(body["notifyMs"]) + round((time.monotonic() - first) * 1000)}
                first = time.monotonic()
            raw = orjson.dumps(body)
            await self.limiter.wait()
            if await self._post(raw):
                self.tally.acknowledged += 1
                self.sent.write(raw + b"\n")
                return
        self.tally.failed += 1

    async def _post(self, raw: bytes) -> bool:
        headers = {"Content-Type": "application/json"}
        if self.options.secret is not None:
            headers["Agora-Signature-V2"] = sign(raw, self.options.secret)
        try:
            async with self.session.post(self.options.url, data=raw, headers=headers) as response:
                await response.read()
                return response.status == 200  # NCS: anything else, 201 and 204 included, is a failure
        except (aiohttp.ClientError, TimeoutError):
            return False


async def simulate(options: Options) -> Tally:
    """Generate the recordings, post their deliveries, and write every acknowledged body to `options.sent`."""
    check_loopback(options.url)
    bodies = deliveries(options)
    timeout = aiohttp.ClientTimeout(total=options.timeout_s)
    connector = aiohttp.TCPConnector(limit=options.concurrency)
    with options.sent.open("wb") as sent:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            return await Sender(session, options, sent).send_all(bodies)


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m processor.simulate", description=__doc__)
    parser.add_argument(
        "--url", required=True, help="a loopback ingest address, e.g. http://127.0.0.1:8080/v1/callbacks/agora"
    )
    parser.add_argument("--secret", help="sign each body with Agora-Signature-V2 (HMAC-SHA256) under this secret")
    parser.add_argument("--recordings", type=_positive, required=True, metavar="N")
    parser.add_argument("--seed", type=int, default=0, metavar="K", help="the same seed makes the same deliveries")
    parser.add_argument("--rate", type=float, default=200.0, metavar="R", help="attempts per second (0: no limit)")
    parser.add_argument("--concurrency", type=_positive, default=16, metavar="C", help="requests in flight at most")
    parser.add_argument("--jitter-ms", type=int, default=0, metavar="J", help="random delay per delivery: shuffles")
    parser.add_argument("--duplicates", type=_probability, default=0.0, metavar="P", help="resend probability")
    parser.add_argument("--drops", type=_probability, default=0.0, metavar="P", help="loss probability")
    parser.add_argument("--failovers", action="store_true", help="every recording fails over at least once")
    parser.add_argument("--sent", type=Path, required=True, metavar="FILE", help="acknowledged bodies, JSON lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the simulator; exit 1 if any delivery was never acknowledged, 2 for a refused URL."""
    args = _parser().parse_args(argv)
    options = Options(
        url=args.url,
        recordings=args.recordings,
        sent=args.sent,
        secret=args.secret.encode() if args.secret else None,
        seed=args.seed,
        rate=args.rate or None,
        concurrency=args.concurrency,
        jitter_ms=args.jitter_ms,
        duplicates=args.duplicates,
        drops=args.drops,
        failovers=args.failovers,
    )
    try:
        tally = asyncio.run(simulate(options))
    except NotLoopback as error:
        print(f"simulate: {error}", file=sys.stderr)
        return 2
    print(tally.line())
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
