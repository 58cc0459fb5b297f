"""Reading API keys from the api_keys projection (never the secret, nor its hash)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import ColumnElement, Row, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.domain.api_keys import ApiKeyStatus
from flowledger.http.api_keys.schemas import ApiKeyResponse
from flowledger.http.pagination import Page, fetch_page
from flowledger.projections.tables import api_keys

ApiKeySort = Literal["created_at", "name", "expires_at"]
ApiKeyStatusFilter = Literal["active", "expired", "revoked", "all"]
COLUMNS = (
    api_keys.c.id,
    api_keys.c.name,
    api_keys.c.role,
    api_keys.c.prefix,
    api_keys.c.expires_at,
    api_keys.c.created_at,
    api_keys.c.created_by,
    api_keys.c.revoked_at,
    api_keys.c.user_id,
    api_keys.c.permissions,
)


def status_of(row: Row[Any], now: datetime) -> ApiKeyStatus:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def _status_is(status: ApiKeyStatus, now: datetime) -> ColumnElement[bool]:
    revoked = api_keys.c.revoked_at.is_not(None)
    expired = and_(api_keys.c.expires_at.is_not(None), api_keys.c.expires_at <= now)
    if status == "revoked":
        return revoked
    if status == "expired":
        return and_(~revoked, expired)
    return and_(~revoked, or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now))


def to_response(row: Row[Any], now: datetime) -> ApiKeyResponse:
    return ApiKeyResponse(
        id=row.id,
        name=row.name,
        role=row.role,
        prefix=row.prefix,
        status=status_of(row, now),
        expires_at=row.expires_at,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        user_id=row.user_id,
        permissions=row.permissions,
    )


async def find_api_key(conn: AsyncConnection, key_id: UUID) -> ApiKeyResponse | None:
    query: Select[Any] = select(*COLUMNS).where(api_keys.c.id == key_id)
    row = (await conn.execute(query)).one_or_none()
    return to_response(row, datetime.now(UTC)) if row else None


async def list_api_keys(
    conn: AsyncConnection,
    *,
    status: ApiKeyStatusFilter | None,
    role: str | None,
    sort: ApiKeySort,
    user_id: UUID | None = None,
    order: Literal["asc", "desc"],
    page: int,
    page_size: int,
) -> Page[ApiKeyResponse]:
    now = datetime.now(UTC)
    query: Select[Any] = select(*COLUMNS)
    if status is not None and status != "all":
        query = query.where(_status_is(status, now))
    if role is not None:
        query = query.where(api_keys.c.role == role)
    if user_id is not None:
        query = query.where(api_keys.c.user_id == user_id)
    column = api_keys.c[sort]
    primary = column.desc().nulls_last() if order == "desc" else column.asc().nulls_last()
    return await fetch_page(
        conn,
        query,
        order_by=[primary, api_keys.c.id.asc()],
        page=page,
        page_size=page_size,
        to_item=lambda row: to_response(row, now),
    )
