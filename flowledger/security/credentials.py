"""Turning a credential into a :class:`~flowledger.domain.access.Principal`, or refusing it.

API keys are checked against the ``api_keys`` projection on every request (one indexed
lookup by hash, no process-local cache), so a revocation applies to every API process as soon
as the projection has applied it. ``FLOWLEDGER_ADMIN_API_KEY`` is an admin key that needs no
database. Bearer tokens are JWTs signed with the configured HMAC secret or public key; ``exp``
and ``sub`` are required, the role comes from a claim.
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
    Principal,
    Role,
    api_key_actor,
    highest_role,
    jwt_actor,
)
from flowledger.domain.api_keys import KEY_SCHEME, hash_api_key
from flowledger.projections.tables import api_keys
from flowledger.security.settings import HMAC_ALGORITHMS, SecuritySettings

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
                        api_keys.c.id, api_keys.c.role, api_keys.c.expires_at, api_keys.c.revoked_at
                    ).where(api_keys.c.key_hash == hash_api_key(key))
                )
            ).one_or_none()
        if row is None:
            raise CredentialRefused("The API key is not valid.", "unknown")
        if row.revoked_at is not None:
            raise CredentialRefused("The API key has been revoked.", "revoked")
        if row.expires_at is not None and row.expires_at <= now:
            raise CredentialRefused("The API key has expired.", "expired")
        return Principal(
            actor=api_key_actor(row.id),
            role=Role(row.role),
            kind="api_key",
            key_id=row.id,
            expires_at=row.expires_at,
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
