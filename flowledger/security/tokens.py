"""Access tokens of sessions: short-lived JWTs (PyJWT, HS256) that name their session.

A token carries ``sub`` (the user id), ``sid`` (the session id), ``role`` (for clients to
read; the server reads the user's role anew on every request), ``iat``, ``exp``, ``iss`` and
``jti``; its header's ``kid`` tells it apart from bearer tokens of an identity provider
(``FLOWLEDGER_JWT_*``), which are checked as before. The signature proves the server issued
it; the session's row (``flowledger.security.credentials``) says whether it still holds.

The signing key is ``FLOWLEDGER_SESSION_SECRET`` or, unset, a random key made by the first API
process that needs one and kept in the database (``auth_signing_keys``), so that every API
process signs and checks with the same key without anyone configuring it.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

import jwt
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from flowledger.projections.tables import auth_signing_keys
from flowledger.security.sign_in_settings import SignInSettings

SESSION_KEY_ID: Final = "flowledger-session"
"""The ``kid`` of every access token sign-in issues."""
ISSUER: Final = "flowledger"
ALGORITHM: Final = "HS256"
SIGNING_KEY_NAME: Final = "session-access-tokens"


class TokenRefused(Exception):
    """Not an access token this server issued, or an expired one; ``reason`` for logs."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int
    """Seconds from now."""


@dataclass(frozen=True)
class TokenClaims:
    user_id: UUID
    session_id: UUID
    expires_at: datetime


def is_session_token(token: str) -> bool:
    """Whether a bearer token says it is one of ours (its signature is checked later)."""
    try:
        return jwt.get_unverified_header(token).get("kid") == SESSION_KEY_ID
    except jwt.InvalidTokenError:
        return False


class SessionTokens:
    """Issues and checks the access tokens of sessions; one per API process."""

    def __init__(self, settings: SignInSettings) -> None:
        self.settings = settings
        self._key: str | None = settings.session_secret

    async def key(self, engine: AsyncEngine) -> str:
        if self._key is None:
            self._key = await _shared_key(engine)
        return self._key

    async def issue(
        self,
        engine: AsyncEngine,
        *,
        user_id: UUID,
        session_id: UUID,
        role: str,
        session_expires_at: datetime,
        now: datetime | None = None,
    ) -> AccessToken:
        """A token for the session, expiring after the access token lifetime (or with the
        session, if that is sooner)."""
        issued_at = now or datetime.now(UTC)
        lifetime = timedelta(seconds=self.settings.access_token_ttl_s)
        expires_at = min(issued_at + lifetime, session_expires_at)
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": str(user_id),
            "sid": str(session_id),
            "role": role,
            "iat": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(
            claims, await self.key(engine), algorithm=ALGORITHM, headers={"kid": SESSION_KEY_ID}
        )
        return AccessToken(token, max(0, int((expires_at - issued_at).total_seconds())))

    async def check(self, engine: AsyncEngine, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                await self.key(engine),
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "sub", "sid", "iss"]},
            )
            return TokenClaims(
                user_id=UUID(str(claims["sub"])),
                session_id=UUID(str(claims["sid"])),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("The access token has expired; refresh it.", "expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError) as error:
            raise TokenRefused(f"The access token is not valid: {error}.", "invalid") from None


async def _shared_key(engine: AsyncEngine) -> str:
    """The key kept in the database, made now by whichever process gets here first."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(auth_signing_keys)
            .values(
                name=SIGNING_KEY_NAME,
                secret=secrets.token_urlsafe(48),
                created_at=datetime.now(UTC),
            )
            .on_conflict_do_nothing(index_elements=[auth_signing_keys.c.name])
        )
        stored = await conn.execute(
            select(auth_signing_keys.c.secret).where(auth_signing_keys.c.name == SIGNING_KEY_NAME)
        )
        return str(stored.scalar_one())
