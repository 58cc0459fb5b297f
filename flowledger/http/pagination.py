"""Lists: ``page``/``page_size`` in, ``{items, total, page, page_size, total_pages}`` out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

import msgspec
from litestar.params import Parameter
from sqlalchemy import ColumnElement, Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")
MAX_PAGE_SIZE: Final = 100
MAX_PAGE: Final = 1_000_000
"""Keeps the row offset within PostgreSQL's bigint (a larger page was a 500)."""

PageNumber = Annotated[
    int, Parameter(ge=1, le=MAX_PAGE, description=f"Page number, from 1 to {MAX_PAGE}.")
]
PageSize = Annotated[
    int, Parameter(ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, 1 to {MAX_PAGE_SIZE}.")
]
SortOrder = Annotated[Literal["asc", "desc"], Parameter(description="Sort direction.")]


class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int
    total_pages: int


def escape_like(text: str) -> str:
    """``text`` for use inside a LIKE pattern, matching itself literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def fetch_page(
    conn: AsyncConnection,
    query: Select[Any],
    *,
    order_by: Sequence[ColumnElement[Any]],
    page: int,
    page_size: int,
    to_item: Callable[[Row[Any]], T],
    count: Select[Any] | None = None,
) -> Page[T]:
    """Run a filtered query for one page, with the total count of matching rows (``count``: a
    cheaper statement that answers the same number, where the caller has one)."""
    if count is None:
        count = select(func.count()).select_from(query.order_by(None).subquery())
    total = int((await conn.execute(count)).scalar_one())
    rows = (
        await conn.execute(
            query.order_by(*order_by).limit(page_size).offset((page - 1) * page_size)
        )
    ).all()
    return Page(
        items=[to_item(row) for row in rows],
        total=total,
        page=page,
        page_size=page_size,
        total_pages=(total + page_size - 1) // page_size,
    )
