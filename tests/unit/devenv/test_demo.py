"""`make demo`'s own parts: the mix it sends, its settings, the table and the check it prints."""

from __future__ import annotations

import io

import pytest

from devenv.demo import COLUMNS, Console, DemoSettings, differences, main, mix, table
from devenv.kafka import free_port


def test_the_mix_holds_a_fatal_exit_discontinuities_and_failovers_of_both_numberings_whatever_the_seed():
    for seed in range(20):
        shapes = mix(seed, 6)
        assert len(shapes) == 6
        assert shapes[0].fatal_error
        assert shapes[1].interruptions > 0
        assert (shapes[2].failovers, shapes[2].restart_sequence_on_failover) == (1, True)
        assert (shapes[3].failovers, shapes[3].restart_sequence_on_failover) == (2, False)


def test_the_same_seed_makes_the_same_mix():
    assert mix(7, 10) == mix(7, 10)
    assert mix(7, 10) != mix(8, 10)


def test_the_demo_reads_the_addresses_secret_and_gap_timeout_make_run_uses(monkeypatch):
    monkeypatch.setenv("INGEST_PORT", "18080")
    monkeypatch.setenv("PROCESSOR_WEB_PORT", "16066")
    monkeypatch.setenv("INGEST_AGORA_SECRETS", "new-secret, old-secret")
    monkeypatch.setenv("PROCESSOR_GAP_TIMEOUT_MS", "5000")
    settings = DemoSettings()
    assert (settings.ingest, settings.processor) == ("http://127.0.0.1:18080", "http://127.0.0.1:16066")
    assert settings.secret() == b"new-secret"
    assert settings.gap_timeout_ms == 5000
    monkeypatch.setenv("DEMO_GAP_TIMEOUT_MS", "1000")
    assert DemoSettings().gap_timeout_ms == 1000


def test_without_a_secret_the_demo_sends_unsigned(monkeypatch):
    monkeypatch.delenv("INGEST_AGORA_SECRETS", raising=False)
    assert DemoSettings().secret() is None


def test_differences_name_each_field_that_differs_and_each_recording_not_answered():
    expected = {"a": {"status": 8, "failovers": 1}, "b": {"status": 5}, "c": {"status": 20}}
    live = {"a": {"status": 8, "failovers": 2}, "b": None, "c": {"status": 20}}
    assert differences(expected, live) == {"a": {"failovers": (1, 2)}, "b": None}


def state(sid: str, missing: list[int]) -> dict[str, object]:
    return {
        "sid": sid,
        "status": 20,
        "status_name": "exited_abnormally",
        "failovers": 1,
        "discontinuities": 3,
        "files": ["a.m3u8", "b.m3u8"],
        "missing_sequences": missing,
    }


def test_the_table_shows_one_aligned_line_per_recording_by_sid_with_long_holes_shortened():
    text = table({"sid-b": state("sid-b", list(range(10))), "sid-a": state("sid-a", []), "sid-c": None})
    head, first, second, third = text.splitlines()
    assert head.split("  ")[0].strip() == "sid"
    assert [word for word in first.split(" ") if word] == ["sid-a", "20", "exited_abnormally", "1", "3", "2", "-"]
    assert second.endswith("0,1,2,3,4,5,… (10 in all)")
    assert third.startswith("sid-c")
    assert "(not answered)" in third
    assert head.index("failovers") == first.index("1 ")  # columns line up
    assert len(COLUMNS) == len([word for word in head.split("  ") if word])


def test_progress_off_a_terminal_is_printed_only_when_it_changes():
    stream = io.StringIO()
    console = Console(stream)
    console.progress("settling: 1/2 agree", "1 s")
    console.progress("settling: 1/2 agree", "2 s")
    console.progress("settling: 2/2 agree", "3 s")
    console.line("done")
    assert stream.getvalue().splitlines() == ["settling: 1/2 agree; 1 s", "settling: 2/2 agree; 3 s", "done"]


@pytest.mark.timeout(30)
def test_the_demo_exits_2_and_says_to_start_make_run_when_nothing_answers(monkeypatch, capsys):
    monkeypatch.setenv("INGEST_PORT", str(free_port()))
    assert main([]) == 2
    assert "start `make run` in another terminal" in capsys.readouterr().err
