"""Webhook signatures: what a receiver can check."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowledger.webhooks.signing import signature, signature_header, verify

pytestmark = pytest.mark.unit
NOW = 1_800_000_000
secrets = st.text(min_size=16, max_size=40)


@given(secret=secrets, body=st.binary(max_size=200))
def test_a_signed_body_verifies_with_its_secret(secret: str, body: bytes) -> None:
    assert verify(secret, body, signature_header(secret, NOW, body), now=NOW)


@given(secret=secrets, body=st.binary(min_size=1, max_size=200), index=st.integers(0, 199))
def test_any_change_to_the_body_breaks_the_signature(secret: str, body: bytes, index: int) -> None:
    i = index % len(body)
    tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
    assert not verify(secret, tampered, signature_header(secret, NOW, body), now=NOW)


def test_another_secret_an_old_timestamp_or_garbage_do_not_verify() -> None:
    body = b'{"event_type":"RunFailed"}'
    header = signature_header("s" * 16, NOW, body)
    assert not verify("t" * 16, body, header, now=NOW)
    assert not verify("s" * 16, body, header, now=NOW + 301)
    assert verify("s" * 16, body, header, now=NOW + 299)
    assert not verify("s" * 16, body, "", now=NOW)
    assert not verify("s" * 16, body, "t=abc,v1=00", now=NOW)


def test_the_scheme_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(b"key", b"1800000000.{}", hashlib.sha256).hexdigest()
    assert signature("key", NOW, b"{}") == expected
    assert signature_header("key", NOW, b"{}") == f"t={NOW},v1={expected}"
    assert verify("key", b"{}", f"t={NOW},v1=bad,v1={expected}", now=NOW)
