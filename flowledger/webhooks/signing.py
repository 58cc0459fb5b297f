"""How deliveries are signed, and how a receiver checks it.

``X-Flowledger-Signature: t=<unix seconds>,v1=<hex>`` where ``hex`` is
HMAC-SHA256(secret, ``"<t>.<raw body>"``). Receivers recompute it over the raw body, compare in
constant time, and refuse old timestamps (replays). ``v1`` may appear more than once in future
(several secrets during a rotation): accept when any matches.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

SIGNATURE_HEADER: Final = "X-Flowledger-Signature"
TIMESTAMP_HEADER: Final = "X-Flowledger-Timestamp"
DEFAULT_TOLERANCE_S: Final = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``header`` is a valid, recent signature of ``body`` with ``secret``."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
