"""IngestSettings: read from INGEST_* variables, secrets masked, errors naming the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ingest.settings import IngestSettings, explain


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> IngestSettings:
    for name, value in env.items():
        monkeypatch.setenv(f"INGEST_{name.upper()}", value)
    return IngestSettings()


def test_secrets_are_a_comma_separated_list_per_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, agora_secrets="old, new,", anyrtc_secrets="ar")
    assert settings.secrets_of("agora") == (b"old", b"new")
    assert settings.secrets_of("anyrtc") == (b"ar",)


def test_the_masked_dump_never_contains_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, agora_secrets="hunter2")
    assert "hunter2" not in repr(settings.masked())
    assert "hunter2" not in repr(settings)
    assert settings.masked()["agora_secrets"] == "<1 secret(s)>"


def test_starting_without_any_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="INGEST_ALLOW_UNSIGNED"):
        load(monkeypatch)


def test_starting_without_secrets_is_allowed_when_asked_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(monkeypatch, allow_unsigned="true").allow_unsigned


def test_defaults_follow_the_issue(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, agora_secrets="s")
    assert (settings.raw_topic, settings.max_body_bytes) == ("recording.callbacks.raw", 262144)
    assert settings.linger_ms <= 2
    assert settings.publish_timeout_s < 10
    assert settings.instance_id


def test_slow_clients_are_bounded_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, agora_secrets="s")
    assert 0 < settings.header_timeout_s <= 30
    assert 0 < settings.body_timeout_s <= 10  # NCS gives up on an answer after 10 s anyway


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("linger_ms", "5"),
        ("publish_timeout_s", "12"),
        ("port", "http"),
        ("log_level", "chatty"),
        ("header_timeout_s", "0"),
        ("body_timeout_s", "60"),
    ],
)
def test_a_bad_value_is_explained_with_the_variable_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        load(monkeypatch, agora_secrets="s", **{name: value})
    assert explain(caught.value).startswith(f"INGEST_{name.upper()}: ")


def test_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, agora_secrets="s")
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]  # the point of the test
