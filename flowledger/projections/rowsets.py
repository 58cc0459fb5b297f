"""Set-based writes for projections: what a batch changes is written in a few statements, not
one or more per event.

- :func:`copy_rows` appends rows with a binary ``COPY`` (logs: the audit log, run logs).
- :class:`RowSet` holds the rows of one table that a batch reads and changes, in memory: rows
  loaded once at the start of the batch, folded by every event of the batch, then written back
  together (several events of one run make one row write). Written back means *replaced*: the
  rows that existed are deleted by key and every touched row is copied in again, two
  statements per table whatever the number of rows.

Statements name tables without a schema, so a rebuild's ``search_path`` (the side schema first)
sends them to the fresh copies. JSON columns are held as JSON text both ways (read as
``column::text``, written as text), so a row is never parsed only to be written back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import cache
from typing import Any, Final
from uuid import UUID

import msgspec
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg.types.json import set_json_dumps
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from flowledger.runtime.database import composed

Key = tuple[Any, ...]
_json = msgspec.json.Encoder()


def json_text(value: Any) -> str | None:
    """A value for a JSON column, as JSON text (None stays SQL NULL)."""
    if value is None:
        return None
    return _json.encode(value).decode()


def driver(conn: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a SQLAlchemy one (same transaction)."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    return raw


# Column types as binary COPY names them (the order matters: JSONB is a JSON, BigInteger an
# Integer).
_COPY_TYPES: tuple[tuple[type, str], ...] = (
    (JSONB, "jsonb"),
    (JSON, "json"),
    (PG_UUID, "uuid"),
    (BigInteger, "int8"),
    (Integer, "int4"),
    (Boolean, "bool"),
    (Float, "float8"),
    (Text, "text"),
    (String, "varchar"),
)


@cache
def _copy_types(table: Table, columns: tuple[str, ...]) -> list[str]:
    names = []
    for name in columns:
        column_type = table.c[name].type
        if isinstance(column_type, DateTime):
            names.append("timestamptz" if column_type.timezone else "timestamp")
            continue
        found = next((pg for kind, pg in _COPY_TYPES if isinstance(column_type, kind)), None)
        if found is None:
            raise TypeError(f"{table.name}.{name}: no COPY type for {column_type!r}")
        names.append(found)
    return names


def _as_is(text: str | bytes) -> str | bytes:
    """JSON columns are given as JSON text already."""
    return text


@cache
def _copy(table: Table, columns: tuple[str, ...]) -> bytes:
    return composed(
        sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
    )


def copy_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Append rows (values in ``columns`` order, JSON as text) with one binary ``COPY``."""
    statement = _copy(table, tuple(columns))
    with driver(conn).cursor() as cursor:
        set_json_dumps(_as_is, cursor)  # (this cursor's adapters only)
        with cursor.copy(statement) as copy:
            copy.set_types(_copy_types(table, tuple(columns)))
            for row in rows:
                copy.write_row(row)


UPSERT_ROWS: Final = 64
"""Up to this many rows of a table, a batch upserts them (one statement per row, sent together:
one round trip for every table of a batch, where deleting and copying takes two per table);
more are copied in, which costs less per row."""


@cache
def _upsert(table: Table, columns: tuple[str, ...], keys: tuple[str, ...]) -> bytes:
    """``INSERT`` of every column (cast to its type: JSON comes as text) that replaces the row
    with the same key."""
    values = sql.SQL(", ").join(
        sql.SQL("%s::{}").format(sql.SQL(name)) for name in _copy_types(table, columns)
    )
    others = [c for c in columns if c not in keys]
    action = (
        sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in others
            )
        )
        if others
        else sql.SQL("DO NOTHING")
    )
    return composed(
        sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
            sql.Identifier(table.name),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            values,
            sql.SQL(", ").join(map(sql.Identifier, keys)),
            action,
        )
    )


def json_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, JSON | JSONB))


def _hashable(value: Any) -> Any:
    """A key part that hashes fast (a UUID hashes in Python, its integer in C)."""
    return value.int if type(value) is UUID else value


class RowSet:
    """The rows of ``table`` one batch works on, by key (see the module's doc)."""

    def __init__(self, table: Table, key: Sequence[str]) -> None:
        self.table = table
        self._key_columns = tuple(key)
        self.columns = tuple(c.name for c in table.columns)
        self._json = json_columns(table)
        self._rows: dict[Key, dict[str, Any]] = {}
        self._loaded: set[Key] = set()
        self._touched: set[Key] = set()
        self._groups: dict[Any, list[Key]] = {}
        """Keys by their first part (a run's steps)."""
        selected = sql.SQL(", ").join(
            sql.SQL("{}::text").format(sql.Identifier(c)) if c in self._json else sql.Identifier(c)
            for c in self.columns
        )
        self._select = composed(
            sql.SQL("SELECT {} FROM {} WHERE ").format(selected, sql.Identifier(table.name))
        )

    def clear(self, keep: Collection[Any] = ()) -> None:
        """Forget the rows, but those whose first key part (hashed, see :meth:`key`) is in
        ``keep``: they stay held as rows the table has (call it once they are written)."""
        if not keep:
            self._rows, self._loaded, self._touched, self._groups = {}, set(), set(), {}
            return
        rows: dict[Key, dict[str, Any]] = {}
        groups: dict[Any, list[Key]] = {}
        for first in keep:
            keys = self._groups.get(first)
            if keys:
                groups[first] = keys
                for key in keys:
                    rows[key] = self._rows[key]
        self._rows, self._loaded, self._touched, self._groups = rows, set(rows), set(), groups

    def __len__(self) -> int:
        """How many rows are held."""
        return len(self._rows)

    def held(self, first: Any) -> int:
        """How many rows are held whose first key part (hashed, see :meth:`key`) is ``first``."""
        return len(self._groups.get(first, ()))

    def key(self, *values: Any) -> Key:
        """The key of the row whose key columns have these values."""
        return tuple(map(_hashable, values))

    def key_of(self, row: Mapping[str, Any]) -> Key:
        return tuple([_hashable(row[k]) for k in self._key_columns])

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self._key_columns

    # ------------------------------------------------------------------ reading
    def send_load(
        self, conn: Connection, where: sql.Composable, params: Mapping[str, Any]
    ) -> psycopg.Cursor[tuple[Any, ...]]:
        """The query of the rows ``where`` selects, sent on a cursor of its own (in a pipeline,
        with others): :meth:`take` holds its rows (rows already held are kept as they are)."""
        cursor = driver(conn).cursor(binary=True, row_factory=tuple_row)
        cursor.execute(self._select + composed(where), params)
        return cursor

    def take(self, cursor: psycopg.Cursor[tuple[Any, ...]]) -> None:
        """Hold the rows :meth:`send_load`'s query selected."""
        with cursor:
            for values in cursor.fetchall():
                row = dict(zip(self.columns, values, strict=True))
                key = self.key_of(row)
                if key not in self._rows:
                    self._hold(key, row)
                    self._loaded.add(key)

    def _hold(self, key: Key, row: dict[str, Any]) -> None:
        self._rows[key] = row
        self._groups.setdefault(key[0], []).append(key)

    def get(self, *key: Any) -> dict[str, Any] | None:
        """The row (to read only), or None when it is neither loaded nor added."""
        return self._rows.get(self.key(*key))

    def group(self, first: Any, **equal: Any) -> list[dict[str, Any]]:
        """The rows held whose first key column is ``first`` (a run's steps) and whose columns
        have the values ``equal`` gives, to change in place (they will be written back)."""
        found = []
        for key in self._groups.get(_hashable(first), ()):
            row = self._rows[key]
            if all(row[column] == value for column, value in equal.items()):
                self._touched.add(key)
                found.append(row)
        return found

    # ------------------------------------------------------------------ changing
    def add(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A new row (every column not given is NULL); an error if the key is held."""
        full = dict.fromkeys(self.columns) | dict(row)
        key = self.key_of(full)
        if key in self._rows:
            raise ValueError(f"{self.table.name}: a row with key {key} exists already")
        self._hold(key, full)
        self._touched.add(key)
        return full

    def edit(self, *key: Any) -> dict[str, Any] | None:
        """The row to change in place (it will be written back), or None when not held."""
        hashed = tuple(map(_hashable, key))
        row = self._rows.get(hashed)
        if row is not None:
            self._touched.add(hashed)
        return row

    # ------------------------------------------------------------------ writing
    @property
    def upserts(self) -> bool:
        """Whether :meth:`write` upserts (a few rows) rather than copies (many)."""
        return len(self._touched) <= UPSERT_ROWS

    def write(self, conn: Connection) -> None:
        """Replace the touched rows: a few are upserted (``INSERT ... ON CONFLICT`` of every
        column, in one ``executemany``, which also goes in a caller's pipeline); more are
        deleted where they existed and copied in (``COPY``)."""
        if not self._touched:
            return
        touched = list(self._touched)
        rows = [self._rows[key] for key in touched]
        columns = self.columns
        values = ([row[c] for c in columns] for row in rows)
        if self.upserts:
            with driver(conn).cursor() as cursor:
                cursor.executemany(_upsert(self.table, columns, self._key_columns), values)
        else:
            existing = [row for key, row in zip(touched, rows, strict=True) if key in self._loaded]
            if existing:
                self._delete(conn, existing)
            copy_rows(conn, self.table, columns, values)
        self._loaded |= self._touched
        self._touched = set()

    def _delete(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Delete the rows with these keys (see :func:`_delete_statement`)."""
        first, *others = self.key_columns
        firsts = {_hashable(row[first]): row[first] for row in rows}
        params = [list(firsts.values())]
        if others:
            params += [[row[k] for row in rows] for k in self.key_columns]
        with driver(conn).cursor() as cursor:
            cursor.execute(_delete_statement(self.table, self.key_columns), params)


@cache
def _delete_statement(table: Table, keys: tuple[str, ...]) -> bytes:
    """``DELETE`` of the rows with the given keys. It names the values of the key's first
    column (``= ANY``) besides the keys themselves, so the planner can find the rows by index:
    matching the keys alone, it read the whole table for every batch (a cost that grew with
    the table)."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    types = [table.c[k].type.compile(dialect=dialect) for k in keys]
    statement = sql.SQL("DELETE FROM {} WHERE {} = ANY(%s::{}[])").format(
        sql.Identifier(table.name), sql.Identifier(keys[0]), sql.SQL(types[0])
    )
    if len(keys) > 1:
        statement += sql.SQL(" AND ({}) IN (SELECT * FROM unnest({}))").format(
            sql.SQL(", ").join(map(sql.Identifier, keys)),
            sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(t)) for t in types),
        )
    return composed(statement)
