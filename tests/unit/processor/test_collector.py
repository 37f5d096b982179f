"""The garbage-collector settings: what they change, that a replay puts them back, that garbage is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor import collector, replay


class Node:
    """A reference cycle's link (only the cycle collector frees a cycle)."""

    def __init__(self) -> None:
        self.other: Node | None = None


def dropped_cycle() -> weakref.ref[Node]:
    """Make a two-node cycle nothing else refers to; return a weak reference to one of its nodes."""
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


@pytest.fixture
def pristine_collector() -> Iterator[None]:
    """Leave the collector as the test found it, whatever the test did."""
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_settled_freezes_what_exists_raises_the_thresholds_and_undoes_both(pristine_collector: None) -> None:
    before = gc.get_threshold()
    with collector.settled():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, collector.MIDDLE_THRESHOLD, before[2])
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_settled_undoes_its_settings_when_the_block_raises(pristine_collector: None) -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), collector.settled():
        raise RuntimeError("replay failed")
    assert (gc.get_freeze_count(), gc.get_threshold()) == (0, before)


def test_a_cycle_made_while_settled_is_still_collected(pristine_collector: None) -> None:
    with collector.settled():
        gone = dropped_cycle()
        gc.collect()
        assert gone() is None


def test_settle_collects_start_up_garbage_before_freezing_it(pristine_collector: None) -> None:
    gone = dropped_cycle()
    collector.settle()
    assert gone() is None  # freed, not frozen for the life of the process
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[:2] == (collector.YOUNG_THRESHOLD, collector.MIDDLE_THRESHOLD)


def test_the_replay_command_leaves_the_collector_as_it_found_it(
    pristine_collector: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "empty.jsonl"
    log.write_bytes(b"\n")
    before = gc.get_threshold()
    assert replay.main([str(log), "--summary"]) == 0
    assert (gc.get_freeze_count(), gc.get_threshold()) == (0, before)
    assert "replay: 1 lines" in capsys.readouterr().err
