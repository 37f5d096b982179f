"""Signature verification over the raw body bytes, per provider, with secret rotation."""

from __future__ import annotations

import hashlib
import hmac

from multidict import CIMultiDict

from ingest.signature import AGORA, ANYRTC, Match, has_signature, sign, verify
from tests.ingest_support import agora_headers, callback_body

BODY = callback_body()
SECRET = b"s3cret"


def test_a_v2_signature_made_with_the_secret_verifies() -> None:
    headers = {"Agora-Signature-V2": hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()}
    assert verify(BODY, headers, [SECRET]) == Match("Agora-Signature-V2", 0)


def test_a_sha1_signature_verifies_when_v2_is_absent() -> None:
    headers = {"Agora-Signature": hmac.new(SECRET, BODY, hashlib.sha1).hexdigest()}
    assert verify(BODY, headers, [SECRET]) == Match("Agora-Signature", 0)


def test_a_wrong_v2_signature_is_not_rescued_by_a_right_sha1_one() -> None:
    headers = {"Agora-Signature-V2": "0" * 64, "Agora-Signature": sign(BODY, SECRET, digest="sha1")}
    assert verify(BODY, headers, [SECRET]) is None


def test_any_secret_of_the_list_verifies_so_rotation_needs_no_downtime() -> None:
    headers = agora_headers(BODY, b"new")
    assert verify(BODY, headers, [b"old", b"new"]) == Match("Agora-Signature-V2", 1)


def test_a_signature_over_a_reserialised_body_does_not_verify() -> None:
    reserialised = BODY.replace(b",", b", ")
    assert verify(BODY, agora_headers(reserialised, SECRET), [SECRET]) is None


def test_upper_case_hex_and_surrounding_spaces_are_accepted() -> None:
    headers = {"Agora-Signature-V2": f"  {sign(BODY, SECRET).upper()} "}
    assert verify(BODY, headers, [SECRET]) is not None


def test_header_names_are_matched_case_insensitively_with_http_headers() -> None:
    headers = CIMultiDict({"agora-signature-v2": sign(BODY, SECRET)})
    assert verify(BODY, headers, [SECRET]) is not None


def test_no_signature_header_and_no_secret_verify_nothing() -> None:
    assert verify(BODY, {}, [SECRET]) is None
    assert verify(BODY, agora_headers(BODY, SECRET), []) is None
    assert not has_signature({})
    assert has_signature(agora_headers(BODY, SECRET))


def test_a_non_ascii_header_value_is_a_mismatch_not_a_crash() -> None:
    assert verify(BODY, {"Agora-Signature-V2": "é\udcff"}, [SECRET]) is None


def test_anyrtc_ar_signature_is_an_hmac_sha256_over_the_raw_body_by_assumption() -> None:
    headers = {"Ar-Signature": sign(BODY, SECRET)}
    assert verify(BODY, headers, [SECRET], schemes=ANYRTC) == Match("Ar-Signature", 0)
    assert verify(BODY, headers, [SECRET], schemes=AGORA) is None


def test_anyrtc_also_accepts_agora_headers() -> None:
    assert verify(BODY, agora_headers(BODY, SECRET), [SECRET], schemes=ANYRTC) == Match("Agora-Signature-V2", 0)


def test_signing_with_a_remembered_key_gives_the_plain_hmac_every_time() -> None:
    for body in (b"", b"{}", b"x" * 5000):
        for digest in ("sha256", "sha1"):
            expected = hmac.new(b"k", body, digest).hexdigest()
            assert sign(body, b"k", digest=digest) == sign(body, b"k", digest=digest) == expected
