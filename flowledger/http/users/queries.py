"""Reading users from the users projection (never the password hash)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowledger.http.pagination import Page, escape_like, fetch_page
from flowledger.http.users.schemas import UserResponse
from flowledger.projections.tables import api_keys, users

UserSort = Literal["created_at", "email", "name", "role"]
UserStatusFilter = Literal["active", "disabled", "deleted", "all"]
COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.name,
    users.c.role,
    users.c.status,
    users.c.created_at,
    users.c.updated_at,
    users.c.created_by,
    users.c.updated_by,
    users.c.version,
)


def to_response(row: Row[Any]) -> UserResponse:
    return UserResponse(**row._asdict())


async def find_user(conn: AsyncConnection, user_id: UUID) -> UserResponse | None:
    query: Select[Any] = select(*COLUMNS).where(users.c.id == user_id)
    row = (await conn.execute(query)).one_or_none()
    return to_response(row) if row else None


async def list_users(
    conn: AsyncConnection,
    *,
    status: UserStatusFilter | None,
    role: str | None,
    email: str | None,
    sort: UserSort,
    order: Literal["asc", "desc"],
    page: int,
    page_size: int,
) -> Page[UserResponse]:
    query: Select[Any] = select(*COLUMNS)
    if status is None:
        query = query.where(users.c.status != "deleted")
    elif status != "all":
        query = query.where(users.c.status == status)
    if role is not None:
        query = query.where(users.c.role == role)
    if email:
        query = query.where(users.c.email.ilike(f"%{escape_like(email)}%", escape="\\"))
    column = users.c[sort]
    primary = column.desc() if order == "desc" else column.asc()
    return await fetch_page(
        conn,
        query,
        order_by=[primary, users.c.id.asc()],
        page=page,
        page_size=page_size,
        to_item=to_response,
    )


async def live_key_ids(conn: AsyncConnection, user_id: UUID) -> list[UUID]:
    """The user's API keys that are not revoked (deleting the user revokes them)."""
    rows = await conn.execute(
        select(api_keys.c.id).where(api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
    )
    return [row.id for row in rows]


async def password_hash(conn: AsyncConnection, user_id: UUID) -> str | None:
    """The user's password hash, to check a password against (never returned)."""
    row = await conn.execute(select(users.c.password_hash).where(users.c.id == user_id))
    return row.scalar_one_or_none()
