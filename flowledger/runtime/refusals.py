"""Why the database would not give us a connection, in words an operator can act on.

The drivers say it in several ways (psycopg at connect time, psycopg-pool's timeout, SQLAlchemy
and ``eventsourcing`` wrapping either), and often with the server's own sentence inside (``FATAL:
sorry, too many clients already``). :func:`refusal_of` finds that sentence in an exception and
its causes and says what it means (:class:`Refusal`): what happened, whether waiting may help,
and what to do. A timeout of our own pool carries no sentence: :func:`probe` then connects once
to hear the server's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import psycopg
import sqlalchemy.exc
from eventsourcing import persistence as es_persistence

from flowledger.runtime.database import Database

BUDGET_HINT: Final = "see 'Connection budget' in the README"


@dataclass(frozen=True)
class Refusal:
    cause: str
    """What happened, in a few words."""
    advice: str
    """What to do about it."""
    transient: bool
    """Whether trying again later may work (a full or restarting server, not a wrong password)."""
    detail: str = ""
    """The server's or driver's own words."""

    def line(self) -> str:
        said = f" ({self.detail})" if self.detail else ""
        return f"{self.cause}{said}; {self.advice}"


_FULL = Refusal(
    "the database has no free connection",
    f"stop some of its clients or raise its max_connections ({BUDGET_HINT})",
    transient=True,
)
_STARTING = Refusal(
    "the database is starting up or shutting down",
    "wait until it accepts connections",
    transient=True,
)
_UNREACHABLE = Refusal(
    "the database does not answer",
    "start it (flowledger dev starts the embedded one) or check DATABASE_URL",
    transient=True,
)
_CREDENTIALS = Refusal(
    "the database refused our credentials",
    "check the user and password in DATABASE_URL",
    transient=False,
)
_MISSING = Refusal(
    "the database or its user does not exist",
    "check the database name and user in DATABASE_URL",
    transient=False,
)
_POOL = Refusal(
    "no database connection became free in time",
    f"the process's pools are all in use; raise FLOWLEDGER_DB_POOL_SIZE ({BUDGET_HINT})",
    transient=True,
)

# The server's and libpq's sentences, lower case, checked in this order.
_SENTENCES: Final = (
    ("too many clients", _FULL),
    ("too many connections", _FULL),  # per role or per database (CONNECTION LIMIT)
    ("remaining connection slots are reserved", _FULL),
    ("the database system is starting up", _STARTING),
    ("the database system is shutting down", _STARTING),
    ("the database system is in recovery mode", _STARTING),
    ("the database system is not yet accepting connections", _STARTING),
    ("the database system is not accepting connections", _STARTING),
    ("terminating connection due to administrator command", _STARTING),
    ("password authentication failed", _CREDENTIALS),
    ("authentication failed", _CREDENTIALS),
    ("no pg_hba.conf entry", _CREDENTIALS),
    ("does not exist", _MISSING),
    ("connection refused", _UNREACHABLE),
    ("no such file or directory", _UNREACHABLE),
    ("could not translate host name", _UNREACHABLE),
    ("timeout expired", _UNREACHABLE),
    ("server closed the connection unexpectedly", _UNREACHABLE),
    ("could not connect", _UNREACHABLE),
    ("connection is bad", _UNREACHABLE),
)
_CONNECTION_ERRORS: Final = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    es_persistence.OperationalError,
    es_persistence.InterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)


def refusal_of(error: BaseException) -> Refusal | None:
    """What ``error`` says about reaching the database; None when it is about something else
    (a failing query, a bug). A pool's timeout with no sentence of the server's is
    ``no database connection became free in time``."""
    chain = list(_causes(error))
    if not any(isinstance(e, _CONNECTION_ERRORS) for e in chain):
        return None
    for e in chain:
        text = str(e).lower()
        for sentence, refusal in _SENTENCES:
            if sentence in text:
                return _with_detail(refusal, e)
    if any(_is_pool_timeout(e) for e in chain):
        return _POOL
    return None


def probe(database: Database) -> Refusal | None:
    """Connect once: why the server refuses us, or None when it accepts."""
    try:
        with database.connect():
            return None
    except psycopg.Error as error:
        return refusal_of(error) or _with_detail(_UNREACHABLE, error)


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        e = pending.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        orig = getattr(e, "orig", None)
        pending.extend([orig if isinstance(orig, BaseException) else None])
        pending.extend([e.__cause__, e.__context__])


def _is_pool_timeout(error: BaseException) -> bool:
    return isinstance(error, sqlalchemy.exc.TimeoutError) or type(error).__name__ == "PoolTimeout"


def _with_detail(refusal: Refusal, error: BaseException) -> Refusal:
    words = str(error).strip().splitlines()
    detail = words[0] if words else type(error).__name__
    for marker in ("FATAL:", "failed:"):  # libpq: 'connection failed: connection to ... failed: X'
        if marker in detail:
            detail = detail.rsplit(marker, 1)[1].strip()
    return Refusal(refusal.cause, refusal.advice, refusal.transient, detail[:200])
