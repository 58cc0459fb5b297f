"""Checking an inbound webhook call against its trigger's ``auth``: none, a shared token in a
header, an HMAC signature of the body with a timestamp, or basic auth.

The signature is flowledger's own webhook signature (``flowledger.webhooks.signing``):
``<header>: t=<unix seconds>,v1=<hex of HMAC-SHA256(secret, "<t>.<raw body>")>``, refused
when ``t`` is more than ``tolerance_s`` away from now. A signature is accepted once: the call's
occurrence is the signature, so a replay within the tolerance finds the firing it started.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowledger.domain.triggers import (
    DEFAULT_SIGNATURE_HEADER,
    DEFAULT_TOKEN_HEADER,
    DEFAULT_TOLERANCE_S,
)
from flowledger.webhooks.signing import verify


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str = ""
    """Why it was refused (for the AUTH log line, not for the caller)."""
    signature: str | None = None
    """The accepted signature (HMAC): what makes the call unique."""


ACCEPTED = Verdict(accepted=True)


def check_call(
    auth: Mapping[str, Any] | None, headers: Mapping[str, str], body: bytes, now: float
) -> Verdict:
    """Whether a call with these headers (any case) and this raw body may start a run."""
    kind = (auth or {}).get("type", "none")
    if auth is None or kind == "none":
        return ACCEPTED
    if kind == "token":
        given = headers.get(str(auth.get("header", DEFAULT_TOKEN_HEADER)).lower())
        if given is None:
            return Verdict(False, "token header missing")
        return _same(given, str(auth["token"]), "wrong token")
    if kind == "hmac":
        header = headers.get(str(auth.get("header", DEFAULT_SIGNATURE_HEADER)).lower())
        if header is None:
            return Verdict(False, "signature header missing")
        tolerance = float(auth.get("tolerance_s", DEFAULT_TOLERANCE_S))
        if not verify(str(auth["secret"]), body, header, tolerance_s=tolerance, now=now):
            return Verdict(False, "signature wrong or outside the time tolerance")
        return Verdict(True, signature=header.replace(" ", ""))
    if kind == "basic":
        return _basic(headers.get("authorization"), auth)
    return Verdict(False, f"unknown authentication {kind!r}")


def _same(given: str, expected: str, reason: str) -> Verdict:
    if hmac.compare_digest(given.encode(), expected.encode()):
        return ACCEPTED
    return Verdict(False, reason)


def _basic(authorization: str | None, auth: Mapping[str, Any]) -> Verdict:
    scheme, _, encoded = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return Verdict(False, "basic credentials missing")
    try:
        user, colon, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return Verdict(False, "basic credentials malformed")
    user_ok = hmac.compare_digest(user.encode(), str(auth["username"]).encode())
    password_ok = hmac.compare_digest(password.encode(), str(auth["password"]).encode())
    if colon and user_ok and password_ok:
        return ACCEPTED
    return Verdict(False, "wrong username or password")
