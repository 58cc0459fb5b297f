"""Sessions: what a user's sign-in opens, and what signing out closes.

A session starts when a user signs in with their password. It holds the hash of its current
refresh token (the token itself is answered once and never kept), and the user's version when
it started: signing a user out everywhere (or disabling, deleting them, or changing their
password) ends every session started at an earlier version of the user, without touching each.

Refreshing rotates the refresh token: the presented one must be the current one; a token that
was current before (replayed after it was rotated, as a thief would) ends the session at once
(the OAuth 2.0 Security Best Current Practice, refresh token reuse detection). The access
tokens of a session name it, so ending the session refuses them from the next request on.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Final, Literal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from flowledger.domain.errors import Conflict

EndReason = Literal["signed_out", "refresh_token_reused", "user_signed_out_everywhere"]
REFRESH_TOKEN_SCHEME: Final = "flr_"  # noqa: S105  (a prefix, not a secret)


class SessionRefused(Conflict):
    """The session cannot be used: ended, expired, or the refresh token is not its own.
    ``reason`` is a short word for logs."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


def hash_token(token: str) -> str:
    """What is kept instead of a refresh token (256 random bits: a fast hash suffices)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Session(Aggregate):
    """One sign-in of one user, until it is signed out, expires or its user is signed out
    everywhere."""

    class Started(Aggregate.Created):
        user_id: UUID
        user_version: int
        """The user's version when it signed in (see ``User.session_is_current``)."""
        token_hash: str
        expires_at: datetime
        audit_omits = ("token_hash",)

    class Refreshed(Aggregate.Event):
        token_hash: str
        audit_omits = ("token_hash",)

    class Ended(Aggregate.Event):
        reason: str

    @classmethod
    def start(
        cls,
        *,
        session_id: UUID,
        user_id: UUID,
        user_version: int,
        token_hash: str,
        expires_at: datetime,
    ) -> Session:
        """A new session; its id is chosen by the caller, since its refresh tokens name it."""
        return cls._create(
            cls.Started,
            id=session_id,
            user_id=user_id,
            user_version=user_version,
            token_hash=token_hash,
            expires_at=expires_at,
        )

    @event(Started)
    def __init__(
        self, user_id: UUID, user_version: int, token_hash: str, expires_at: datetime
    ) -> None:
        self.user_id = user_id
        self.user_version = user_version
        self.token_hash = token_hash
        self.expires_at = expires_at
        self.previous_hashes: set[str] = set()
        self.ended_reason: str | None = None

    @property
    def is_ended(self) -> bool:
        return self.ended_reason is not None

    def refresh(self, presented_hash: str, new_hash: str, now: datetime) -> None:
        """Rotate the refresh token. A token that was rotated away ends the session (reuse);
        an unknown one is refused and changes nothing."""
        if self.is_ended:
            raise SessionRefused("The session has ended; sign in again.", "session_ended")
        if self.expires_at <= now:
            raise SessionRefused("The session has expired; sign in again.", "session_expired")
        if hmac.compare_digest(presented_hash, self.token_hash):
            self._refresh(new_hash)
            return
        if presented_hash in self.previous_hashes:
            self.end("refresh_token_reused")
            return
        raise SessionRefused("The refresh token is not valid.", "unknown_refresh_token")

    @event(Refreshed)
    def _refresh(self, token_hash: str) -> None:
        self.previous_hashes.add(self.token_hash)
        self.token_hash = token_hash

    def end(self, reason: EndReason) -> None:
        """End the session. Ending an ended session changes nothing."""
        if not self.is_ended:
            self._end(reason)

    @event(Ended)
    def _end(self, reason: str) -> None:
        self.ended_reason = reason
