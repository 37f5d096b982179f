"""Fixtures of the end-to-end tier: the integration tier's session broker, reused rather than copied."""

from __future__ import annotations

# Re-exported so pytest registers them here too (a non-root conftest may not use `pytest_plugins`).
from tests.integration.conftest import bootstrap_servers, kafka

__all__ = ["bootstrap_servers", "kafka"]
