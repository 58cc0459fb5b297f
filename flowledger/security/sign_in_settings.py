"""Sign-in settings: session access tokens and the limit on failed sign-ins
(``FLOWLEDGER_SESSION_*``, ``FLOWLEDGER_ACCESS_TOKEN_TTL``, ``FLOWLEDGER_SIGN_IN_*``); the
README's settings table lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from flowledger.runtime.environment import integer, read_settings, setting
from flowledger.runtime.settings import Settings

MIN_SECRET_LENGTH: Final = 32


def _secret(raw: str) -> str:
    if len(raw) < MIN_SECRET_LENGTH or raw != raw.strip():
        raise ValueError(
            f"must be at least {MIN_SECRET_LENGTH} characters without outer spaces "
            "(e.g. `openssl rand -hex 32`)"
        )
    return raw


@dataclass(frozen=True)
class SignInSettings:
    session_secret: str | None = setting("FLOWLEDGER_SESSION_SECRET", None, _secret)
    """HMAC key of the access tokens sign-in issues. Unset: a key made once and kept in the
    database, shared by every API process."""
    access_token_ttl_s: int = setting("FLOWLEDGER_ACCESS_TOKEN_TTL", 900, integer(minimum=30))
    session_ttl_s: int = setting("FLOWLEDGER_SESSION_TTL", 30 * 24 * 3600, integer(minimum=60))
    """How long a session (its refresh token) lasts after sign-in."""
    max_failures_per_account: int = setting(
        "FLOWLEDGER_SIGN_IN_MAX_FAILURES", 5, integer(minimum=1)
    )
    max_failures_per_address: int = setting(
        "FLOWLEDGER_SIGN_IN_MAX_FAILURES_PER_ADDRESS", 20, integer(minimum=1)
    )
    failure_window_s: int = setting("FLOWLEDGER_SIGN_IN_FAILURE_WINDOW", 900, integer(minimum=1))
    """Failed sign-ins count within this many seconds from the first; past the limit, sign-in
    is refused (429) until the window ends."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInSettings:
        return read_settings(cls, settings.extra)
