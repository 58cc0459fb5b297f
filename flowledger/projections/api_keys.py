"""The api_keys read table: what authentication checks on every request (by key hash)."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Connection, insert, update

from flowledger.domain.api_keys import ApiKey
from flowledger.eventlog.store import metadata_of
from flowledger.projections.projector import Projection
from flowledger.projections.tables import api_keys


class ApiKeysProjection(Projection):
    name: ClassVar[str] = "api_keys"
    topic_prefixes = ("flowledger.domain.api_keys:",)
    tables = (api_keys,)

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        actor = metadata_of(event).actor
        if isinstance(event, ApiKey.Issued):
            conn.execute(
                insert(api_keys).values(
                    id=event.originator_id,
                    name=event.name,
                    role=event.role,
                    prefix=event.prefix,
                    key_hash=event.key_hash,
                    expires_at=event.expires_at,
                    user_id=event.user_id,
                    permissions=event.permissions,
                    version=event.originator_version,
                    created_at=event.timestamp,
                    created_by=actor,
                    position=position,
                )
            )
        elif isinstance(event, ApiKey.Revoked):
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == event.originator_id)
                .values(
                    revoked_at=event.timestamp,
                    revoked_by=actor,
                    version=event.originator_version,
                    position=position,
                )
            )
