"""GET /recordings/ for the whole group: every owner's page of its own recordings, merged by sid, or none at all.

Each worker lists only the recordings of the partitions it owns (a *local* page). The answering worker asks every
owner for its local page (itself without HTTP), and answers only when the pages are one cut of the group: all of
the same consumer-group generation as its own, and together owning every raw partition exactly once. Anything else
(a rebalance under way, an owner unreachable, slow or not ready) is `NotWhole`: the client retries, and never takes
part of the list for the whole of it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

#: Default page size.
PAGE_SIZE = 100
#: The largest page a client may ask for.
MAX_PAGE_SIZE = 1000
#: How long the answering worker waits for all the local pages: then the list is not whole (503).
GATHER_TIMEOUT_S = 2.0
#: The value of the `scope` parameter asking a worker for its own recordings only.
LOCAL = "local"
#: The header of a 503: the group's list is whole again once a rebalance has ended, usually within seconds.
RETRY_LATER = {"Retry-After": "1"}


class Unavailable(Exception):
    """A worker did not answer with its local page (unreachable, not ready, or a malformed answer)."""


@dataclass(frozen=True, slots=True)
class Query:
    """One page asked for: recordings of `status` (any if None) with sids after `after`, at most `limit`."""

    status: int | None
    after: str
    limit: int
    local: bool = False

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Query:
        """Read the query string of GET /recordings/ (raises ValueError with the reason)."""
        try:
            status = int(params["status"]) if "status" in params else None
            limit = int(params.get("limit", PAGE_SIZE))
        except ValueError:
            raise ValueError("status and limit must be integers") from None
        scope = params.get("scope")
        if scope not in (None, LOCAL):
            raise ValueError(f"scope must be {LOCAL!r} or absent")
        return cls(status, params.get("after", ""), min(max(limit, 1), MAX_PAGE_SIZE), local=scope == LOCAL)

    def local_params(self) -> dict[str, str]:
        """Return the query string asking another worker for its local page of this query."""
        status = {} if self.status is None else {"status": str(self.status)}
        return {"scope": LOCAL, **status, "after": self.after, "limit": str(self.limit)}


class View(Protocol):
    """What a worker knows of its own recordings (`LocalView`)."""

    def page(self, *, status: int | None, after: bytes, limit: int) -> list[bytes]:
        """Return up to `limit` sids after `after`, in order, of the given status (any if None)."""


@dataclass(frozen=True, slots=True)
class LocalPage:
    """One worker's page of its own recordings, with the generation and raw partitions it owned when it answered.

    `next` is the last sid it looked at when the page is full (it knows nothing beyond), else None.
    """

    generation: int
    partitions: tuple[int, ...]
    recordings: tuple[dict[str, Any], ...]
    next: str | None

    @classmethod
    def of(
        cls,
        query: Query,
        view: View,
        snapshot: Callable[[bytes], bytes | None],
        *,
        generation: int,
        partitions: Iterable[int],
    ) -> LocalPage:
        """Build the page of `query` from the worker's view and snapshots, skipping the sids forgotten meanwhile."""
        keys = view.page(status=query.status, after=query.after.encode(), limit=query.limit)
        states = (snapshot(key) for key in keys)
        recordings = tuple(orjson.loads(state) for state in states if state is not None)
        following = keys[-1].decode() if len(keys) == query.limit else None
        return cls(generation, tuple(partitions), recordings, following)

    @classmethod
    def parse(cls, body: bytes) -> LocalPage:
        """Read another worker's answer (raises Unavailable if it is not a local page)."""
        try:
            answer = orjson.loads(body)
            page = cls(
                int(answer["generation"]),
                tuple(int(partition) for partition in answer["partitions"]),
                tuple(answer["recordings"]),
                answer["next"],
            )
            if not all(
                isinstance(recording, dict) and isinstance(recording["sid"], str) for recording in page.recordings
            ):
                raise TypeError("a recording without a string sid")
            if not isinstance(page.next, str | None):
                raise TypeError("a cursor that is not a string")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise Unavailable(f"not a local page: {error!r}") from error
        return page

    def json(self) -> dict[str, Any]:
        """Return the answer to a local-scope request (what /readyz says, with the page)."""
        return {
            "ready": True,
            "generation": self.generation,
            "partitions": list(self.partitions),
            "recordings": list(self.recordings),
            "next": self.next,
        }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the group's recordings: `next` is the cursor of the following page, None after the last."""

    recordings: tuple[dict[str, Any], ...]
    next: str | None

    def json(self) -> dict[str, Any]:
        """Return the answer to GET /recordings/."""
        return {"recordings": list(self.recordings), "next": self.next}


@dataclass(frozen=True, slots=True)
class Answer:
    """What GET /recordings/ answers: HTTP status, JSON body and headers."""

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NotWhole:
    """The pages gathered are not the whole group's (503): why."""

    reason: str


#: GET another worker's local page: (base URL, query string) → (HTTP status, body).
Get = Callable[[str, Mapping[str, str]], Awaitable[tuple[int, bytes]]]


def owners(metadata: Mapping[str, Mapping[str, Sequence[int]]]) -> list[str]:
    """Return the URLs of the workers owning any partition, from the table's {url: {changelog topic: partitions}}."""
    return sorted(url for url, topics in metadata.items() if any(topics.values()))


def merge(pages: Sequence[LocalPage], *, limit: int) -> Page:
    """Merge the owners' pages of one query into the group's page.

    Each local page is whole up to its own `next` (a full page knows nothing beyond its last sid), so the group's
    page is whole up to the smallest of them: the first `limit` sids up to there, and a cursor wherever it stops.
    """
    bound = min((page.next for page in pages if page.next is not None), default=None)
    merged = sorted(
        (recording for page in pages for recording in page.recordings if bound is None or recording["sid"] <= bound),
        key=lambda recording: str(recording["sid"]),
    )[:limit]
    if len(merged) == limit:
        return Page(tuple(merged), str(merged[-1]["sid"]))
    return Page(tuple(merged), bound)


def check(pages: Sequence[LocalPage], *, generation: int, partitions: int) -> NotWhole | None:
    """Return why the pages are not one cut of the group, None if they are (one generation, each partition and sid
    once)."""
    generations = sorted({page.generation for page in pages})
    if generations != [generation]:
        return NotWhole(f"pages of generations {generations}, this worker's is {generation}: a rebalance is under way")
    owned = Counter(partition for page in pages for partition in page.partitions)
    missing = sorted(set(range(partitions)) - set(owned))
    doubled = sorted(partition for partition, count in owned.items() if count > 1)
    stray = sorted(set(owned) - set(range(partitions)))
    if missing or doubled or stray:
        return NotWhole(f"partitions missing {missing}, owned twice {doubled}, unknown {stray}: a rebalance under way?")
    listed = Counter(recording["sid"] for page in pages for recording in page.recordings)
    if twice := sorted(sid for sid, count in listed.items() if count > 1):
        return NotWhole(f"sids listed by two workers: {twice}")
    return None


@dataclass(frozen=True, slots=True)
class Gatherer:
    """Ask every owner for its local page (this worker itself without HTTP) and merge them, or say why not."""

    #: This worker's URL, as the table's metadata names it.
    own_url: str
    #: The raw topic's partition count: the pages must own each exactly once.
    partitions: int
    #: This worker's local page of a query (raises Unavailable while it does not know its recordings).
    local: Callable[[Query], LocalPage]
    get: Get
    #: What `get` raises when a worker cannot be reached (the HTTP client's errors).
    failures: tuple[type[Exception], ...] = ()
    timeout_s: float = GATHER_TIMEOUT_S

    async def respond(self, params: Mapping[str, str], metadata: Mapping[str, Mapping[str, Sequence[int]]]) -> Answer:
        """Answer GET /recordings/?`params`, given the table's {url: {changelog topic: partitions}}."""
        try:
            query = Query.parse(params)
        except ValueError as error:
            return Answer(400, {"error": str(error)})
        answer = await self.answer(query, owners(metadata))
        if isinstance(answer, NotWhole):
            return Answer(503, {"error": answer.reason}, RETRY_LATER)
        return Answer(200, answer.json())

    async def answer(self, query: Query, owners: Iterable[str]) -> LocalPage | Page | NotWhole:
        """Answer `query`: this worker's local page, or the group's page (of `owners` and this worker), or why not."""
        try:
            own = self.local(query)  # also tells the generation every page must be of
            if query.local:
                return own
            others = [url for url in owners if url != self.own_url]
            async with asyncio.timeout(self.timeout_s):
                answers = await asyncio.gather(*(self._peer_page(url, query) for url in others), return_exceptions=True)
        except Unavailable as error:
            return NotWhole(str(error))
        except TimeoutError:
            return NotWhole(f"not every owner answered within {self.timeout_s} s")
        pages = [own, *(answer for answer in answers if isinstance(answer, LocalPage))]
        failed = [answer for answer in answers if not isinstance(answer, LocalPage)]
        for failure in failed:
            if not isinstance(failure, Unavailable):
                raise failure  # a bug, not an owner's absence
        if failed:
            return NotWhole("; ".join(map(str, failed)))
        return check(pages, generation=own.generation, partitions=self.partitions) or merge(pages, limit=query.limit)

    async def _peer_page(self, url: str, query: Query) -> LocalPage:
        try:
            status, body = await self.get(url, query.local_params())
        except self.failures as error:
            raise Unavailable(f"{url} unreachable: {error!r}") from error
        if status != 200:
            raise Unavailable(f"{url} answered {status}")
        return LocalPage.parse(body)
