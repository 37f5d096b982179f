"""The shared partitioner answers as aiokafka's default one, and remembers a bounded number of key hashes."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from kafkaio.partitions import KEY_HASH_CACHE_SIZE, key_hash, partition_for

partition_lists = st.lists(st.integers(0, 10_000), min_size=1, max_size=64, unique=True)


@given(key=st.binary(max_size=100), all_partitions=partition_lists)
def test_a_key_goes_to_the_partition_the_default_partitioner_picks(key: bytes, all_partitions: list[int]) -> None:
    assert partition_for(key, all_partitions, []) == DefaultPartitioner()(key, all_partitions, [])


@given(key=st.binary(min_size=1, max_size=40), count=st.integers(1, 64), more=st.integers(1, 64))
def test_a_remembered_key_follows_a_change_of_the_partition_count(key: bytes, count: int, more: int) -> None:
    before, after = list(range(count)), list(range(count + more))
    partition_for(key, before, [])
    assert partition_for(key, after, []) == DefaultPartitioner()(key, after, [])


def test_a_record_without_key_goes_to_an_available_partition() -> None:
    assert {partition_for(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}


def test_the_remembered_hashes_are_bounded() -> None:
    for n in range(KEY_HASH_CACHE_SIZE + 10):
        key_hash(b"sid-%d" % n)
    info = key_hash.cache_info()
    assert info.maxsize == KEY_HASH_CACHE_SIZE
    assert info.currsize <= KEY_HASH_CACHE_SIZE
