"""IngestSettings: the ingest's whole configuration, read once from INGEST_* environment variables."""

from __future__ import annotations

import socket
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "INGEST_"
PROVIDERS = ("agora", "anyrtc")

#: NCS counts a callback as failed without a 200 within 10 s; a 503 well before that lets it retry.
NCS_DEADLINE_S = 10.0

Secrets = Annotated[list[SecretStr], NoDecode]


class IngestSettings(BaseSettings):
    """Typed, frozen configuration of one ingest process; secrets stay masked in dumps and logs."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    bootstrap_servers: str = "127.0.0.1:9092"
    raw_topic: str = Field("recording.callbacks.raw", min_length=1)
    #: Rotation without downtime: any secret of the list verifies; comma-separated in the environment.
    agora_secrets: Secrets = []
    anyrtc_secrets: Secrets = []
    #: Local development only: accept callbacks without a signature for providers without secrets.
    allow_unsigned: bool = False
    #: Every request waits for the linger: above ~2 ms latency and throughput both suffer (measured).
    linger_ms: int = Field(1, ge=0, le=2)
    publish_timeout_s: float = Field(5.0, gt=0, lt=NCS_DEADLINE_S)
    retry_after_s: int = Field(5, ge=1)
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    #: Slow clients (slowloris): a connection must deliver a complete request head within this long of opening,
    #: or of its previous answer; an idle keep-alive connection is closed after this long too (aiohttp's
    #: keep-alive timer is the only header timer it has). A proxy that reuses connections must idle out sooner.
    header_timeout_s: float = Field(10.0, gt=0)
    #: ...and its whole body within this long of the head, or it gets a 408 and the connection is closed.
    body_timeout_s: float = Field(5.0, gt=0, le=NCS_DEADLINE_S)
    instance_id: str = Field(default_factory=socket.gethostname, min_length=1)
    #: SIGTERM: how long in-flight requests may take to finish before the process exits anyway.
    drain_timeout_s: float = Field(10.0, gt=0)
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(str.upper)] = "INFO"

    @field_validator("agora_secrets", "anyrtc_secrets", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _some_secret_or_explicitly_unsigned(self) -> IngestSettings:
        if not (self.agora_secrets or self.anyrtc_secrets or self.allow_unsigned):
            raise ValueError(
                f"no secret configured: set {ENV_PREFIX}AGORA_SECRETS and/or {ENV_PREFIX}ANYRTC_SECRETS, "
                f"or {ENV_PREFIX}ALLOW_UNSIGNED=true for local development only"
            )
        return self

    def secrets_of(self, provider: str) -> tuple[bytes, ...]:
        """Return a provider's HMAC secrets as bytes."""
        secrets: list[SecretStr] = getattr(self, f"{provider}_secrets")
        return tuple(secret.get_secret_value().encode() for secret in secrets)

    def masked(self) -> dict[str, Any]:
        """Return the settings for a log line: secrets reduced to their count."""
        dump = self.model_dump(exclude={"agora_secrets", "anyrtc_secrets"})
        dump.update({f"{p}_secrets": f"<{len(self.secrets_of(p))} secret(s)>" for p in PROVIDERS})
        return dump


def explain(error: ValidationError) -> str:
    """Return one line per invalid setting, naming the environment variable to fix."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]).upper() if item["loc"] else ""
        name = f"{ENV_PREFIX}{field}" if field else "settings"
        lines.append(f"{name}: {item['msg']}")
    return "\n".join(lines)
