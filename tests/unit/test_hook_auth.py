"""Inbound webhook authentication, each kind, on raw headers and bodies."""

from __future__ import annotations

import base64

import pytest

from flowledger.http.hooks.auth import check_call
from flowledger.webhooks.signing import signature_header

pytestmark = pytest.mark.unit
NOW = 1_800_000_000.0
SECRET = "a-shared-secret-of-some-length"
BODY = b'{"order": 42}'


def test_no_auth_accepts_anything() -> None:
    assert check_call(None, {}, BODY, NOW).accepted
    assert check_call({"type": "none"}, {}, BODY, NOW).accepted


def test_a_token_must_be_in_its_header() -> None:
    auth = {"type": "token", "token": SECRET, "header": "X-Hook-Token"}
    assert check_call(auth, {"x-hook-token": SECRET}, BODY, NOW).accepted
    assert check_call(auth, {"x-hook-token": SECRET + "x"}, BODY, NOW).reason == "wrong token"
    assert check_call(auth, {}, BODY, NOW).reason == "token header missing"


def test_an_hmac_signature_must_sign_this_body_recently() -> None:
    auth = {"type": "hmac", "secret": SECRET, "tolerance_s": 300}
    header = signature_header(SECRET, int(NOW), BODY)
    verdict = check_call(auth, {"x-webhook-signature": header}, BODY, NOW)
    assert verdict.accepted and verdict.signature == header
    assert not check_call(auth, {"x-webhook-signature": header}, BODY + b" ", NOW).accepted
    assert not check_call(auth, {"x-webhook-signature": header}, BODY, NOW + 301).accepted
    wrong = signature_header("another-secret-entirely", int(NOW), BODY)
    assert not check_call(auth, {"x-webhook-signature": wrong}, BODY, NOW).accepted


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_needs_both_the_user_and_the_password() -> None:
    auth = {"type": "basic", "username": "ci", "password": "hunter2"}
    assert check_call(auth, {"authorization": basic("ci", "hunter2")}, BODY, NOW).accepted
    for header in (basic("ci", "hunter3"), basic("cd", "hunter2"), "Basic !!!", "Bearer x"):
        assert not check_call(auth, {"authorization": header}, BODY, NOW).accepted
