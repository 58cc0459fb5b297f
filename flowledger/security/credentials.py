"""Turning a credential into a :class:`~flowledger.domain.access.Principal`, or refusing it.

API keys are checked against the ``api_keys`` projection on every request (one indexed
lookup by hash, no process-local cache), so a revocation applies to every API process as soon
as the projection has applied it. A key that belongs to a user acts as that user, with at most
the user's current role, and is refused once the user is disabled or deleted (the same lookup
joins the ``users`` row). ``FLOWLEDGER_ADMIN_API_KEY`` is an admin key that needs no database.

Bearer tokens are either access tokens of a session (``flowledger.security.tokens``: signed
by this server, naming their session, whose row and its user's are read on every request, so
signing out holds from the next request on, on every API process), or JWTs of an identity
provider, signed with the configured HMAC secret or public key; ``exp`` and ``sub`` are
required, the role comes from a claim.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from flowledger.domain.access import (
    ADMIN_ENV_ACTOR,
    ROLES,
    Permission,
    Principal,
    Role,
    api_key_actor,
    highest_role,
    jwt_actor,
    lower_role,
    user_actor,
)
from flowledger.domain.api_keys import KEY_SCHEME, hash_api_key
from flowledger.projections.tables import api_keys, user_sessions, users
from flowledger.security.settings import HMAC_ALGORITHMS, SecuritySettings
from flowledger.security.tokens import SessionTokens, TokenRefused, is_session_token

SUBJECT_MAX_LENGTH: Final = 200
KEY_MAX_LENGTH: Final = 256


class CredentialRefused(Exception):
    """The credential does not authenticate anyone (HTTP 401); ``detail`` says why."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason
        """A short machine word for logs: missing, unknown, revoked, expired, invalid..."""


@dataclass(frozen=True)
class Authenticator:
    security: SecuritySettings
    admin_api_key: str | None = None
    sessions: SessionTokens | None = None
    """Checks the access tokens of sessions (None: no sign-in, such tokens are refused)."""

    async def api_key(self, key: str, engine: AsyncEngine, now: datetime) -> Principal:
        if self.admin_api_key and hmac.compare_digest(
            key.encode("utf-8"), self.admin_api_key.encode("utf-8")
        ):
            return Principal(actor=ADMIN_ENV_ACTOR, role=Role.ADMIN, kind="admin_env")
        if not key.startswith(KEY_SCHEME) or len(key) > KEY_MAX_LENGTH:
            raise CredentialRefused("The API key is not valid.", "unknown")
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        api_keys.c.id,
                        api_keys.c.role,
                        api_keys.c.expires_at,
                        api_keys.c.revoked_at,
                        api_keys.c.user_id,
                        api_keys.c.permissions,
                        users.c.status.label("user_status"),
                        users.c.role.label("user_role"),
                    )
                    .select_from(api_keys.outerjoin(users, users.c.id == api_keys.c.user_id))
                    .where(api_keys.c.key_hash == hash_api_key(key))
                )
            ).one_or_none()
        if row is None:
            raise CredentialRefused("The API key is not valid.", "unknown")
        if row.revoked_at is not None:
            raise CredentialRefused("The API key has been revoked.", "revoked")
        if row.expires_at is not None and row.expires_at <= now:
            raise CredentialRefused("The API key has expired.", "expired")
        permissions = frozenset(Permission(p) for p in row.permissions) if row.permissions else None
        if row.user_id is None:
            return Principal(
                actor=api_key_actor(row.id),
                role=Role(row.role),
                kind="api_key",
                key_id=row.id,
                expires_at=row.expires_at,
                permissions=permissions,
            )
        if row.user_status != "active":
            status = row.user_status or "not known yet"
            raise CredentialRefused(f"The API key's user is {status}.", "user_not_active")
        return Principal(
            actor=user_actor(row.user_id),
            role=lower_role(Role(row.role), Role(row.user_role)),
            kind="api_key",
            key_id=row.id,
            expires_at=row.expires_at,
            user_id=row.user_id,
            permissions=permissions,
        )

    async def bearer(self, token: str, engine: AsyncEngine, now: datetime) -> Principal:
        """A session's access token, or an identity provider's JWT."""
        if is_session_token(token):
            return await self.session_token(token, engine, now)
        return self.bearer_token(token)

    async def session_token(self, token: str, engine: AsyncEngine, now: datetime) -> Principal:
        if self.sessions is None:
            raise CredentialRefused("Sign-in is not enabled on this server.", "disabled")
        try:
            claims = await self.sessions.check(engine, token)
        except TokenRefused as refused:
            raise CredentialRefused(refused.detail, refused.reason) from None
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        user_sessions.c.user_id,
                        user_sessions.c.user_version,
                        user_sessions.c.expires_at,
                        user_sessions.c.ended_at,
                        users.c.status,
                        users.c.role,
                        users.c.signed_out_at_version,
                    )
                    .select_from(user_sessions.join(users, users.c.id == user_sessions.c.user_id))
                    .where(user_sessions.c.id == claims.session_id)
                )
            ).one_or_none()
        if row is None or row.user_id != claims.user_id:
            raise CredentialRefused("The session is not known.", "unknown_session")
        if row.ended_at is not None or row.user_version < row.signed_out_at_version:
            raise CredentialRefused("The session has ended; sign in again.", "signed_out")
        if row.status != "active":
            raise CredentialRefused(f"The user is {row.status}.", "user_not_active")
        if row.expires_at <= now:
            raise CredentialRefused("The session has expired; sign in again.", "expired")
        return Principal(
            actor=user_actor(row.user_id),
            role=Role(row.role),
            kind="session",
            expires_at=claims.expires_at,
            user_id=row.user_id,
            session_id=claims.session_id,
        )

    def bearer_token(self, token: str) -> Principal:
        security = self.security
        if not security.jwt_enabled:
            raise CredentialRefused("Bearer tokens are not accepted by this server.", "disabled")
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            if algorithm not in security.jwt_algorithms:
                raise CredentialRefused(
                    f"The token's algorithm must be {' or '.join(security.jwt_algorithms)}.",
                    "algorithm",
                )
            key = security.jwt_secret if algorithm in HMAC_ALGORITHMS else security.jwt_public_key
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key or "",
                algorithms=[algorithm],
                audience=security.jwt_audience,
                issuer=security.jwt_issuer,
                leeway=security.jwt_leeway_s,
                options={"require": ["exp", "sub"], "verify_aud": bool(security.jwt_audience)},
            )
        except jwt.ExpiredSignatureError:
            raise CredentialRefused("The token has expired.", "expired") from None
        except jwt.InvalidTokenError as error:
            raise CredentialRefused(f"The token is not valid: {error}.", "invalid") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not 1 <= len(subject) <= SUBJECT_MAX_LENGTH:
            raise CredentialRefused(
                f"The token's sub must be a string of 1 to {SUBJECT_MAX_LENGTH} characters.",
                "invalid",
            )
        role = highest_role(claims.get(security.jwt_role_claim))
        if role is None:
            raise CredentialRefused(
                f"The token's {security.jwt_role_claim!r} claim must name a role: "
                f"{', '.join(ROLES)}.",
                "role",
            )
        return Principal(
            actor=jwt_actor(subject),
            role=role,
            kind="jwt",
            subject=subject,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
