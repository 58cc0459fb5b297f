"""Commands on sessions: start one (sign in), refresh it (rotate its refresh token), end it.

The password is checked before :func:`start_session` runs (``flowledger.security``); these
handlers see only the user id. A refresh token is ``flr_<session id>_<secret>``: answered
once, kept only as its SHA-256. A refresh is decided on the aggregates (the session and its
user), read from the event store, so a token rotated away, a session ended or a user signed
out everywhere is refused on the very next refresh, whichever API process serves it.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

import msgspec

from flowledger.commands import Outcome
from flowledger.domain.user_sessions import (
    REFRESH_TOKEN_SCHEME,
    EndReason,
    Session,
    SessionRefused,
    hash_token,
)
from flowledger.domain.users import User
from flowledger.eventlog.store import EventMetadata, EventStore

KIND: Final = "session"


class StartSession(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    lifetime_s: float
    """How long the session (its refresh tokens) lasts."""


class RefreshSession(msgspec.Struct, frozen=True, kw_only=True):
    session_id: UUID
    presented_hash: str
    """The SHA-256 of the refresh token presented (never the token)."""


class EndSession(msgspec.Struct, frozen=True, kw_only=True):
    session_id: UUID
    reason: EndReason = "signed_out"


@dataclass(frozen=True)
class SessionTokens(Outcome[Session]):
    refresh_token: str
    """The session's new refresh token: answered this once, never stored."""
    user: User


def new_refresh_token(session_id: UUID) -> str:
    return f"{REFRESH_TOKEN_SCHEME}{session_id.hex}_{secrets.token_urlsafe(32)}"


def session_of_refresh_token(token: str) -> UUID | None:
    """The session a refresh token names, or None when it is not one of ours."""
    scheme, _, rest = token.partition(REFRESH_TOKEN_SCHEME)
    session_hex, sep, secret = rest.partition("_")
    if scheme or not sep or not secret or len(session_hex) != 32:
        return None
    try:
        return UUID(hex=session_hex)
    except ValueError:
        return None


def start_session(store: EventStore, command: StartSession, meta: EventMetadata) -> SessionTokens:
    user = store.get(User, command.user_id, kind="user")
    user.check_can_sign_in()
    session_id = uuid.uuid4()
    token = new_refresh_token(session_id)
    session = Session.start(
        session_id=session_id,
        user_id=user.id,
        user_version=user.version,
        token_hash=hash_token(token),
        expires_at=datetime.now(UTC) + timedelta(seconds=command.lifetime_s),
    )
    return SessionTokens(session, store.record(session, metadata=meta), token, user)


def refresh_session(
    store: EventStore, command: RefreshSession, meta: EventMetadata
) -> SessionTokens:
    """A new refresh token for the session. Refused (:class:`SessionRefused`) when the session
    is over; a refresh token used a second time ends the session, then is refused."""
    session = store.get(Session, command.session_id, kind=KIND)
    user = store.find(User, session.user_id)
    if user is None or not user.session_is_current(session.user_version):
        session.end("user_signed_out_everywhere")
        store.record(session, metadata=meta)
        raise SessionRefused("You have been signed out; sign in again.", "signed_out")
    token = new_refresh_token(session.id)
    session.refresh(command.presented_hash, hash_token(token), datetime.now(UTC))
    position = store.record(session, metadata=meta)
    if session.ended_reason == "refresh_token_reused":
        raise SessionRefused(
            "This refresh token was used before: the session is ended; sign in again.",
            "refresh_token_reused",
        )
    return SessionTokens(session, position, token, user)


def end_session(store: EventStore, command: EndSession, meta: EventMetadata) -> Outcome[Session]:
    session = store.get(Session, command.session_id, kind=KIND)
    session.end(command.reason)
    return Outcome(session, store.record(session, metadata=meta))
