"""GET /recordings/ for the whole group (processor/listing.py): owners' pages merged by sid, or 503, never a part."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.listing import (
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    Gatherer,
    LocalPage,
    NotWhole,
    Page,
    Query,
    Unavailable,
    check,
    merge,
    owners,
)

TOPIC = "app-recordings-changelog"


@dataclass
class FakeWorker:
    """A worker's own recordings (sid → status), the partitions it owns and its generation; it answers by URL."""

    url: str
    partitions: tuple[int, ...]
    recordings: dict[str, int] = field(default_factory=dict)
    generation: int = 7
    ready: bool = True
    #: sids whose snapshot is gone by the time the page is built (forgotten meanwhile).
    forgotten: set[str] = field(default_factory=set)

    def page(self, *, status: int | None, after: bytes, limit: int) -> list[bytes]:  # LocalView.page
        keys = sorted(sid.encode() for sid, known in self.recordings.items() if status in (None, known))
        return [key for key in keys if key > after][:limit]

    def snapshot(self, key: bytes) -> bytes | None:
        sid = key.decode()
        return None if sid in self.forgotten else orjson.dumps({"sid": sid, "status": self.recordings[sid]})

    def local(self, query: Query) -> LocalPage:
        if not self.ready:
            raise Unavailable(f"{self.url} is not ready")
        return LocalPage.of(query, self, self.snapshot, generation=self.generation, partitions=self.partitions)


class ConnectionRefused(Exception):
    """What the fake HTTP client raises for a worker that is down."""


@dataclass
class FakeGroup:
    """Workers that reach each other through a fake HTTP GET of their local-scope answers."""

    workers: list[FakeWorker]
    partitions: int = 3
    down: set[str] = field(default_factory=set)
    slow: set[str] = field(default_factory=set)
    asked: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def metadata(self) -> dict[str, dict[str, list[int]]]:
        return {worker.url: {TOPIC: list(worker.partitions)} for worker in self.workers}

    def gatherer(self, worker: FakeWorker) -> Gatherer:
        return Gatherer(worker.url, self.partitions, worker.local, self.get, (ConnectionRefused,), timeout_s=0.2)

    async def get(self, url: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        self.asked.append((url, dict(params)))
        if url in self.down:
            raise ConnectionRefused(url)
        if url in self.slow:
            await asyncio.sleep(10)
        worker = next(worker for worker in self.workers if worker.url == url)
        answer = await self.gatherer(worker).respond(params, self.metadata())
        return answer.status, orjson.dumps(answer.body)

    async def ask(self, worker: FakeWorker, **params: str) -> tuple[int, dict[str, object]]:
        answer = await self.gatherer(worker).respond(params, self.metadata())
        return answer.status, answer.body

    async def page_through(self, worker: FakeWorker, *, limit: int, status: int | None = None) -> list[str]:
        """Follow `next` from the first page to the last; return the sids listed."""
        sids: list[str] = []
        after = ""
        status_param = {} if status is None else {"status": str(status)}
        for _ in range(1000):
            code, body = await self.ask(worker, limit=str(limit), after=after, **status_param)
            assert code == 200, body
            sids += [recording["sid"] for recording in body["recordings"]]  # type: ignore[attr-defined]
            if body["next"] is None:
                return sids
            after = str(body["next"])
        raise AssertionError("the listing never ended")


def three_workers(**recordings: dict[str, int]) -> FakeGroup:
    urls = ("http://a:1", "http://b:2", "http://c:3")
    return FakeGroup([FakeWorker(url, (i,), recordings.get(url[7], {})) for i, url in enumerate(urls)])


def page(generation: int, partitions: tuple[int, ...], sids: list[str], following: str | None = None) -> LocalPage:
    return LocalPage(generation, partitions, tuple({"sid": sid} for sid in sids), following)


# --- the query string ---------------------------------------------------------------------------------------------


def test_a_query_defaults_to_a_page_of_100_of_any_status_from_the_start() -> None:
    assert Query.parse({}) == Query(None, "", PAGE_SIZE)


@pytest.mark.parametrize(("limit", "size"), [("0", 1), ("-5", 1), ("7", 7), ("5000", MAX_PAGE_SIZE)])
def test_a_page_size_is_kept_between_1_and_1000(limit: str, size: int) -> None:
    assert Query.parse({"limit": limit}).limit == size


@pytest.mark.parametrize("params", [{"status": "ended"}, {"limit": "many"}, {"scope": "everything"}])
def test_a_malformed_query_is_refused_with_its_reason(params: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Query.parse(params)


def test_the_local_query_an_owner_is_asked_carries_the_same_page() -> None:
    query = Query.parse({"status": "8", "after": "s1", "limit": "7"})
    assert Query.parse(query.local_params()) == Query(8, "s1", 7, local=True)


def test_the_owners_are_the_workers_the_table_metadata_gives_partitions() -> None:
    assert owners({"http://b:2": {TOPIC: [1]}, "http://a:1": {TOPIC: [0, 2]}, "http://idle:3": {TOPIC: []}}) == [
        "http://a:1",
        "http://b:2",
    ]


# --- merging --------------------------------------------------------------------------------------------------------


def test_pages_merge_by_sid_and_a_full_page_ends_at_the_limit_th_sid_wherever_it_came_from() -> None:
    pages = [page(1, (0,), ["a", "d", "e"], "e"), page(1, (1,), ["b", "c"]), page(1, (2,), ["f"])]
    merged = merge(pages, limit=3)
    assert merged == Page(({"sid": "a"}, {"sid": "b"}, {"sid": "c"}), "c")


def test_a_page_boundary_falls_between_two_workers_sids() -> None:
    pages = [page(1, (0,), ["a", "c"], "c"), page(1, (1,), ["b", "d"], "d")]
    assert merge(pages, limit=2) == Page(({"sid": "a"}, {"sid": "b"}), "b")
    after_b = [page(1, (0,), ["c"]), page(1, (1,), ["d"])]  # the next page starts on the other worker
    assert merge(after_b, limit=2) == Page(({"sid": "c"}, {"sid": "d"}), "d")


def test_the_last_page_has_no_next() -> None:
    assert merge([page(1, (0,), ["a"]), page(1, (1,), [])], limit=2) == Page(({"sid": "a"},), None)


def test_a_merged_page_stops_where_a_worker_s_full_page_stopped_even_when_sids_were_forgotten_meanwhile() -> None:
    # The first worker looked at a, b, c (b forgotten meanwhile): it knows nothing after c, so neither does the page.
    pages = [page(1, (0,), ["a", "c"], "c"), page(1, (1,), ["d", "e"])]
    assert merge(pages, limit=3) == Page(({"sid": "a"}, {"sid": "c"}), "c")


# --- whole or not ---------------------------------------------------------------------------------------------------


def test_pages_of_one_generation_owning_every_partition_once_are_whole() -> None:
    assert check([page(4, (0, 2), []), page(4, (1,), [])], generation=4, partitions=3) is None


@pytest.mark.parametrize(
    ("pages", "why"),
    [
        ([page(4, (0,), []), page(4, (1,), [])], "missing [2]"),
        ([page(4, (0, 1), []), page(4, (1, 2), [])], "owned twice [1]"),
        ([page(4, (0, 1), []), page(5, (2,), [])], "generations [4, 5]"),
        ([page(5, (0, 1), []), page(5, (2,), [])], "generations [5], this worker's is 4"),
        ([page(4, (0, 1, 2, 3), [])], "unknown [3]"),
        ([page(4, (0, 1), ["a", "b"]), page(4, (2,), ["b"])], "sids listed by two workers: ['b']"),
    ],
    ids=[
        "a missing partition",
        "a duplicate partition",
        "two generations",
        "another generation",
        "a stray one",
        "a duplicate sid",
    ],
)
def test_pages_are_not_whole_when(pages: list[LocalPage], why: str) -> None:
    found = check(pages, generation=4, partitions=3)
    assert isinstance(found, NotWhole)
    assert why in found.reason


# --- the group through the gatherer ---------------------------------------------------------------------------------


async def test_any_worker_lists_the_whole_group_in_sid_order_following_next() -> None:
    group = three_workers(a={"s01": 8, "s04": 3, "s07": 8}, b={"s02": 8, "s05": 8}, c={"s03": 3, "s06": 8, "s08": 8})
    everything = [f"s0{i}" for i in range(1, 9)]
    for worker in group.workers:
        assert await group.page_through(worker, limit=3) == everything
        assert await group.page_through(worker, limit=2, status=8) == ["s01", "s02", "s05", "s06", "s07", "s08"]
        assert await group.page_through(worker, limit=100, status=3) == ["s03", "s04"]


async def test_a_worker_asks_the_others_over_http_for_their_local_page_and_itself_directly() -> None:
    group = three_workers(a={"s1": 8})
    await group.ask(group.workers[0], status="8", after="s0", limit="5")
    local = {"scope": "local", "status": "8", "after": "s0", "limit": "5"}
    assert sorted(group.asked) == [("http://b:2", local), ("http://c:3", local)]


async def test_a_local_page_says_the_worker_s_generation_and_partitions() -> None:
    group = three_workers(b={"s2": 8, "s5": 8})
    status, body = await group.ask(group.workers[1], scope="local", limit="1")
    recordings = [{"sid": "s2", "status": 8}]
    assert (status, body) == (
        200,
        {"ready": True, "generation": 7, "partitions": [1], "recordings": recordings, "next": "s2"},
    )


async def test_the_answer_is_503_with_retry_after_when_an_owner_is_unreachable() -> None:
    group = three_workers(a={"s1": 8})
    group.down.add("http://c:3")
    answer = await group.gatherer(group.workers[0]).respond({}, group.metadata())
    assert (answer.status, answer.headers) == (503, {"Retry-After": "1"})
    assert "http://c:3 unreachable" in str(answer.body["error"])


async def test_the_answer_is_503_when_an_owner_is_not_ready_or_answers_late() -> None:
    group = three_workers(a={"s1": 8})
    group.workers[1].ready = False
    group.slow.add("http://c:3")
    status, body = await group.ask(group.workers[0])
    assert status == 503
    assert "not every owner answered within 0.2 s" in str(body["error"])
    group.slow.clear()
    assert await group.ask(group.workers[0]) == (503, {"error": "http://b:2 answered 503"})


async def test_the_answer_is_503_while_the_answering_worker_itself_is_not_ready() -> None:
    group = three_workers(a={"s1": 8})
    group.workers[0].ready = False
    assert await group.ask(group.workers[0], scope="local") == (503, {"error": "http://a:1 is not ready"})
    assert await group.ask(group.workers[0]) == (503, {"error": "http://a:1 is not ready"})
    assert group.asked == []


async def test_the_answer_is_503_during_a_rebalance_when_the_owners_disagree() -> None:
    group = three_workers(a={"s1": 8})
    group.workers[2].generation = 8  # already in the next generation
    status, body = await group.ask(group.workers[0])
    assert status == 503
    assert "generations [7, 8]" in str(body["error"])
    group.workers[2].generation = 7
    group.workers[2].partitions = (1,)  # and one partition owned twice, another by nobody
    status, body = await group.ask(group.workers[0])
    assert status == 503
    assert "missing [2], owned twice [1]" in str(body["error"])


async def test_a_malformed_local_answer_is_not_taken_for_a_page() -> None:
    async def garbage(url: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        return 200, b'{"generation": 7, "partitions": [1], "recordings": [{"status": 8}], "next": null}'

    worker = FakeWorker("http://a:1", (0,))
    gatherer = Gatherer(worker.url, 2, worker.local, garbage)
    answer = await gatherer.respond({}, {"http://b:2": {TOPIC: [1]}})
    assert answer.status == 503
    assert "not a local page" in str(answer.body["error"])


async def test_a_bad_query_is_a_400() -> None:
    group = three_workers()
    assert await group.ask(group.workers[0], status="ended") == (400, {"error": "status and limit must be integers"})


async def test_a_bug_is_not_hidden_as_an_absent_owner() -> None:
    async def broken(url: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        raise RuntimeError("bug")

    worker = FakeWorker("http://a:1", (0,))
    with pytest.raises(RuntimeError, match="bug"):
        await Gatherer(worker.url, 2, worker.local, broken).respond({}, {"http://b:2": {TOPIC: [1]}})


@settings(deadline=None)  # an event loop per example: a loaded machine must not fail it for time
@given(
    sids=st.dictionaries(
        st.text("abcxyz", min_size=1, max_size=4), st.tuples(st.integers(0, 2), st.sampled_from([3, 8]))
    ),
    forgotten=st.sets(st.text("abcxyz", min_size=1, max_size=4)),
    limit=st.integers(1, 6),
    status=st.sampled_from([None, 3, 8]),
)
def test_paging_lists_every_known_sid_of_the_status_once_in_order(
    sids: dict[str, tuple[int, int]], forgotten: set[str], limit: int, status: int | None
) -> None:
    group = three_workers()
    for sid, (owner, state) in sids.items():
        group.workers[owner].recordings[sid] = state
    for worker in group.workers:
        worker.forgotten = forgotten
    listed = asyncio.run(group.page_through(group.workers[limit % 3], limit=limit, status=status))
    assert listed == sorted(sid for sid, (_, state) in sids.items() if status in (None, state) and sid not in forgotten)
