"""Callback signatures: HMAC over the raw body bytes, compared in constant time, per-provider schemes."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class Scheme:
    """One signature header and the HMAC digest its lower-case hex value is made with."""

    header: str
    digest: str  # a hashlib name


class Match(NamedTuple):
    """Which header verified the body, and with which secret of the list (for rotation metrics)."""

    header: str
    secret_index: int


#: Agora NCS: `Agora-Signature-V2` = HMAC-SHA256 and `Agora-Signature` = HMAC-SHA1, lower-case hex, keyed by
#: the secret shown when NCS is configured (spec: Delivery). V2 comes first: SHA1 is only consulted when V2 is
#: absent (legacy senders before 2019-08 sent only `Agora-Signature`).
AGORA: tuple[Scheme, ...] = (
    Scheme("Agora-Signature-V2", "sha256"),
    Scheme("Agora-Signature", "sha1"),
)

#: anyRTC signs with `Ar-Signature`, whose algorithm is not published (spec: What real senders do).
#: ASSUMPTION: HMAC-SHA256 hex over the raw body, like Agora's V2; anyRTC being a compatible clone, Agora's
#: own headers are accepted too. Change this tuple, and only this tuple, once the real algorithm is known.
ANYRTC: tuple[Scheme, ...] = (Scheme("Ar-Signature", "sha256"), *AGORA)

SCHEMES: Mapping[str, tuple[Scheme, ...]] = {"agora": AGORA, "anyrtc": ANYRTC}


def sign(raw_body: bytes, secret: bytes, *, digest: str = "sha256") -> str:
    """Return the lower-case hex HMAC of the raw body (what a sender puts in its header)."""
    mac = _keyed(secret, digest).copy()
    mac.update(raw_body)
    return mac.hexdigest()


@functools.lru_cache(maxsize=64)
def _keyed(secret: bytes, digest: str) -> hmac.HMAC:
    # Keying an HMAC (OpenSSL looking the digest up by name) costs more than hashing a callback: copy a keyed
    # one instead (measured ~2x faster per body). Bounded: secrets are a handful per provider.
    return hmac.new(secret, digestmod=digest)


def verify(
    raw_body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[bytes],
    *,
    schemes: Sequence[Scheme] = AGORA,
) -> Match | None:
    """Return which header and secret verify the raw body, or None when none does.

    The first scheme whose header is present decides: a wrong V2 signature is not rescued by a SHA1 one.
    `headers` should be case-insensitive (aiohttp's are), as HTTP header names are.
    """
    for scheme in schemes:
        received = headers.get(scheme.header)
        if received is None:
            continue
        expected = received.strip().lower().encode("utf-8", "replace")
        matched = None
        for index, secret in enumerate(secrets):
            # Compare against every secret, so timing does not tell which one (or whether any) matched.
            if hmac.compare_digest(sign(raw_body, secret, digest=scheme.digest).encode(), expected):
                matched = matched if matched is not None else Match(scheme.header, index)
        return matched
    return None


def has_signature(headers: Mapping[str, str], *, schemes: Sequence[Scheme] = AGORA) -> bool:
    """Return whether any of the schemes' headers is present (to tell "missing" from "mismatch")."""
    return any(scheme.header in headers for scheme in schemes)


def _check_digests() -> None:
    for schemes in SCHEMES.values():
        for scheme in schemes:
            hashlib.new(scheme.digest)  # fail at import on a misspelt digest name, not on the first callback


_check_digests()
