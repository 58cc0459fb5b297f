"""Set-based writes for projections: what a batch changes is written in a few statements, not
one or more per event.

- :func:`copy_rows` appends rows with ``COPY`` (logs: the audit log, run logs).
- :class:`RowSet` holds the rows of one table that a batch reads and changes, in memory: rows
  loaded once at the start of the batch, folded by every event of the batch, then written back
  together (several events of one run make one row write). Written back means *replaced*: the
  rows that existed are deleted by key and every touched row is copied in again with ``COPY``,
  two statements per table whatever the number of rows.

Statements name tables without a schema, so a rebuild's ``search_path`` (the side schema first)
sends them to the fresh copies. JSON columns are held as JSON text both ways (read as
``column::text``, written as text), so a row is never parsed only to be written back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgspec
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from sqlalchemy import Connection, Table
from sqlalchemy.dialects.postgresql import JSON, JSONB

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


def copy_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Append rows (values in ``columns`` order) with one ``COPY``."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with driver(conn).cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def json_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, JSON | JSONB))


class RowSet:
    """The rows of ``table`` one batch works on, by key (see the module's doc)."""

    def __init__(self, table: Table, key: Sequence[str]) -> None:
        self.table = table
        self.key = tuple(key)
        self.columns = tuple(c.name for c in table.columns)
        self._json = json_columns(table)
        self._rows: dict[Key, dict[str, Any]] = {}
        self._loaded: set[Key] = set()
        self._touched: set[Key] = set()

    def clear(self) -> None:
        self._rows, self._loaded, self._touched = {}, set(), set()

    # ------------------------------------------------------------------ reading
    def load(self, conn: Connection, where: sql.Composable, params: Mapping[str, Any]) -> None:
        """Hold the rows ``where`` selects (rows already held are kept as they are)."""
        selected = sql.SQL(", ").join(
            sql.SQL("{}::text").format(sql.Identifier(c)) if c in self._json else sql.Identifier(c)
            for c in self.columns
        )
        statement = sql.SQL("SELECT {} FROM {} WHERE {}").format(
            selected, sql.Identifier(self.table.name), where
        )
        with driver(conn).cursor(binary=True, row_factory=tuple_row) as cursor:
            cursor.execute(statement, params)
            for values in cursor.fetchall():
                row = dict(zip(self.columns, values, strict=True))
                key = self.key_of(row)
                if key not in self._rows:
                    self._rows[key] = row
                    self._loaded.add(key)

    def key_of(self, row: Mapping[str, Any]) -> Key:
        return tuple(row[k] for k in self.key)

    def get(self, key: Key) -> dict[str, Any] | None:
        """The row (to read only), or None when it is neither loaded nor added."""
        return self._rows.get(key)

    def where(self, **equal: Any) -> Iterator[Key]:
        """Keys of the rows held whose columns have these values."""
        for key, row in self._rows.items():
            if all(row[c] == v for c, v in equal.items()):
                yield key

    # ------------------------------------------------------------------ changing
    def add(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A new row (every column not given is NULL); an error if the key is held."""
        full = dict.fromkeys(self.columns) | dict(row)
        key = self.key_of(full)
        if key in self._rows:
            raise ValueError(f"{self.table.name}: a row with key {key} exists already")
        self._rows[key] = full
        self._touched.add(key)
        return full

    def edit(self, key: Key) -> dict[str, Any] | None:
        """The row to change in place (it will be written back), or None when not held."""
        row = self._rows.get(key)
        if row is not None:
            self._touched.add(key)
        return row

    # ------------------------------------------------------------------ writing
    def write(self, conn: Connection) -> None:
        """Replace the touched rows: delete those that existed, ``COPY`` them all in."""
        if not self._touched:
            return
        existing = [key for key in self._touched if key in self._loaded]
        if existing:
            self._delete(conn, existing)
        copy_rows(
            conn,
            self.table,
            self.columns,
            ([self._rows[key][c] for c in self.columns] for key in self._touched),
        )
        self._loaded |= self._touched
        self._touched = set()

    def _delete(self, conn: Connection, keys: Sequence[Key]) -> None:
        columns = [self.table.c[k] for k in self.key]
        arrays = sql.SQL(", ").join(
            sql.SQL("%s::{}[]").format(sql.SQL(c.type.compile(dialect=conn.dialect)))
            for c in columns
        )
        statement = sql.SQL("DELETE FROM {} WHERE ({}) IN (SELECT * FROM unnest({}))").format(
            sql.Identifier(self.table.name),
            sql.SQL(", ").join(sql.Identifier(k) for k in self.key),
            arrays,
        )
        params = [[key[i] for key in keys] for i in range(len(self.key))]
        with driver(conn).cursor() as cursor:
            cursor.execute(statement, params)
