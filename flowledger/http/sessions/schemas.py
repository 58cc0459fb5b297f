"""The token endpoint's form, answer and errors, as OAuth2 (RFC 6749) has them."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

FIELD_MAX: Final = 4096


def _field(description: str, example: str | None = None) -> Meta:
    return Meta(
        max_length=FIELD_MAX,
        description=description,
        examples=[example] if example is not None else None,
    )


class TokenRequest(msgspec.Struct, kw_only=True):
    """What an OAuth2 client sends, form-encoded: `grant_type=password` with `username` (the
    email) and `password`, or `grant_type=refresh_token` with `refresh_token`. Other OAuth2
    fields (`scope`, `client_id`, `client_secret`) are accepted and not used."""

    grant_type: (
        Annotated[str, _field("`password` (sign in) or `refresh_token` (refresh).", "password")]
        | None
    ) = None
    username: Annotated[str, _field("The user's email.", "ada@example.com")] | None = None
    password: Annotated[str, _field("The user's password.")] | None = None
    refresh_token: (
        Annotated[str, _field("The refresh token of the last answer (for `refresh_token`).")] | None
    ) = None
    scope: Annotated[str, _field("Not used: the user's role decides.")] | None = None
    client_id: Annotated[str, _field("Not used.")] | None = None
    client_secret: Annotated[str, _field("Not used.")] | None = None


class TokenResponse(msgspec.Struct, kw_only=True):
    """A new access token, and the refresh token that replaces the one sent (if any)."""

    access_token: Annotated[
        str,
        Meta(description="Send it as `Authorization: Bearer <access_token>` until it expires."),
    ]
    token_type: Literal["bearer"]
    expires_in: Annotated[int, Meta(description="Seconds the access token lasts.")]
    refresh_token: Annotated[
        str,
        Meta(
            description="Exchange it once (`grant_type=refresh_token`) for new tokens before "
            "the session ends; a refresh token used twice ends the session."
        ),
    ]
    refresh_token_expires_in: Annotated[
        int, Meta(description="Seconds until the session ends and one must sign in again.")
    ]
    scope: str = ""


class OAuthError(msgspec.Struct, kw_only=True):
    """An OAuth2 error (RFC 6749, section 5.2), with ADR 0004's `detail` too."""

    detail: str
    error: Annotated[
        Literal[
            "invalid_request", "invalid_grant", "unsupported_grant_type", "temporarily_unavailable"
        ],
        Meta(examples=["invalid_grant"]),
    ]
    error_description: str
