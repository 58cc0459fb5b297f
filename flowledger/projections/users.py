"""The users and user_sessions read tables: what sign-in and authentication read.

Authentication reads a session's row and its user's on every request made with a session's
access token (no cache), so signing out, disabling or deleting a user holds on every API
process as soon as this projection has applied it (the commands wait for that).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Connection, insert, update

from flowledger.domain.user_sessions import Session
from flowledger.domain.users import User, email_key
from flowledger.eventlog.store import metadata_of
from flowledger.projections.projector import Projection
from flowledger.projections.tables import user_sessions, users

USER_CHANGES: dict[type, Any] = {
    User.Renamed: lambda e: {"name": e.name},
    User.RoleChanged: lambda e: {"role": e.role},
    User.Disabled: lambda e: {"status": "disabled"},
    User.Enabled: lambda e: {"status": "active"},
    User.Deleted: lambda e: {"status": "deleted"},
    User.PasswordChanged: lambda e: {"password_hash": e.password_hash},
    User.SignedOutEverywhere: lambda e: {"signed_out_at_version": e.originator_version},
}


class UsersProjection(Projection):
    name: ClassVar[str] = "users"
    topic_prefixes = ("flowledger.domain.users:", "flowledger.domain.user_sessions:")
    tables = (users, user_sessions)
    pipelined = True  # it only writes

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        if isinstance(event, User.Registered):
            self._registered(conn, event, position)
        elif type(event) in USER_CHANGES:
            self._user_changed(conn, event, position)
        elif isinstance(event, Session.Started):
            self._session_started(conn, event, position)
        elif isinstance(event, Session.Refreshed | Session.Ended):
            self._session_changed(conn, event, position)

    def _registered(self, conn: Connection, event: Any, position: int) -> None:
        actor = metadata_of(event).actor
        conn.execute(
            insert(users).values(
                id=event.originator_id,
                email=event.email,
                email_key=email_key(event.email),
                name=event.name,
                role=event.role,
                status="active",
                password_hash=event.password_hash,
                signed_out_at_version=0,
                version=event.originator_version,
                created_at=event.timestamp,
                updated_at=event.timestamp,
                created_by=actor,
                updated_by=actor,
                position=position,
            )
        )

    def _user_changed(self, conn: Connection, event: Any, position: int) -> None:
        conn.execute(
            update(users)
            .where(users.c.id == event.originator_id)
            .values(
                **USER_CHANGES[type(event)](event),
                version=event.originator_version,
                updated_at=event.timestamp,
                updated_by=metadata_of(event).actor,
                position=position,
            )
        )
        if isinstance(event, User.SignedOutEverywhere):
            conn.execute(
                update(user_sessions)
                .where(
                    user_sessions.c.user_id == event.originator_id,
                    user_sessions.c.ended_at.is_(None),
                    user_sessions.c.user_version < event.originator_version,
                )
                .values(ended_at=event.timestamp, ended_reason="user_signed_out_everywhere")
            )

    def _session_started(self, conn: Connection, event: Any, position: int) -> None:
        conn.execute(
            insert(user_sessions).values(
                id=event.originator_id,
                user_id=event.user_id,
                user_version=event.user_version,
                started_at=event.timestamp,
                expires_at=event.expires_at,
                refreshes=0,
                version=event.originator_version,
                position=position,
            )
        )

    def _session_changed(self, conn: Connection, event: Any, position: int) -> None:
        values: dict[str, Any]
        session = user_sessions.c
        if isinstance(event, Session.Refreshed):
            values = {"refreshed_at": event.timestamp, "refreshes": session.refreshes + 1}
        else:
            values = {"ended_at": event.timestamp, "ended_reason": event.reason}
        conn.execute(
            update(user_sessions)
            .where(session.id == event.originator_id)
            .values(**values, version=event.originator_version, position=position)
        )
