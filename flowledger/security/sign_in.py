"""Signing in with an email and a password: the check, before any session starts.

The user is looked up in the ``users`` projection by email (without regard to case) and the
password checked against its argon2id hash; an unknown email is checked against a stand-in
hash, so both refusals take the same time and say the same thing. Failed sign-ins count
against the account and the client's address (:mod:`flowledger.security.sign_in_limits`);
past the limit, every sign-in of that account or address is refused until its window ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from flowledger.domain.users import email_key
from flowledger.projections.tables import users
from flowledger.runtime.settings import Settings
from flowledger.security.passwords import verify_password_async
from flowledger.security.sign_in_limits import ACCOUNT, SignInLimits
from flowledger.security.sign_in_settings import SignInSettings
from flowledger.security.tokens import SessionTokens

WRONG_CREDENTIALS = "The email or the password is not right."


class SignInRefused(Exception):
    """Sign-in refused: ``detail`` for the caller, ``reason`` for the logs, and how long to
    wait when it is the limit on failures (``retry_after``)."""

    def __init__(self, detail: str, reason: str, retry_after: timedelta | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class SignedInUser:
    user_id: UUID
    role: str


@dataclass(frozen=True)
class SignIn:
    """Sign-in's settings, its access tokens and its limit on failures: one per API process."""

    settings: SignInSettings
    tokens: SessionTokens
    limits: SignInLimits

    @classmethod
    def from_settings(cls, settings: Settings) -> SignIn:
        sign_in = SignInSettings.from_settings(settings)
        return cls(sign_in, SessionTokens(sign_in), SignInLimits.from_settings(sign_in))

    async def check_password(
        self, engine: AsyncEngine, email: str, password: str, address: str | None, now: datetime
    ) -> SignedInUser:
        account = email_key(email)
        keys = self.limits.keys(account, address)
        wait = await self.limits.blocked_for(engine, keys, now)
        if wait is not None:
            raise SignInRefused(
                "Too many failed sign-ins for this account or from this address; "
                f"try again in {max(1, int(wait.total_seconds()))} seconds.",
                "rate_limited",
                wait,
            )
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(users.c.id, users.c.role, users.c.status, users.c.password_hash)
                    .where(users.c.email_key == account, users.c.status != "deleted")
                    .limit(1)
                )
            ).one_or_none()
        if not await verify_password_async(row.password_hash if row else None, password):
            await self.limits.record_failure(engine, keys, now)
            raise SignInRefused(WRONG_CREDENTIALS, "wrong_password" if row else "unknown_user")
        assert row is not None  # a password matched its hash
        if row.status != "active":
            raise SignInRefused(f"The user is {row.status}.", "user_not_active")
        await self.limits.clear(engine, ACCOUNT + account)
        return SignedInUser(row.id, row.role)
