"""A command the database turns away says why in one line, with what to do, tries again for a
bounded time, and never shows a stack trace (issue 21)."""

from __future__ import annotations

import io

import psycopg
import pytest
import sqlalchemy.exc
from eventsourcing import persistence as es_persistence
from psycopg_pool import PoolTimeout

from flowledger.cli.patience import EXIT_REFUSED, EXIT_UNAVAILABLE, patiently
from flowledger.runtime.refusals import refusal_of
from flowledger.runtime.settings import Settings

pytestmark = pytest.mark.unit

FULL = (
    'connection failed: connection to server on socket "/tmp/x/.s.PGSQL.5432" failed: '
    "FATAL:  sorry, too many clients already"
)
WRONG_PASSWORD = (
    'connection failed: connection to server at "db" (10.0.0.5), port 5432 failed: '
    'FATAL:  password authentication failed for user "flowledger"'
)
NO_SOCKET = (
    'connection is bad: connection to server on socket "/tmp/gone/.s.PGSQL.5432" failed: '
    "No such file or directory\n\tIs the server running locally and accepting connections?"
)


def wrapped_by_sqlalchemy(error: Exception) -> Exception:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, error)


def wrapped_by_eventsourcing(error: Exception) -> Exception:
    try:
        raise es_persistence.OperationalError(str(error)) from error
    except es_persistence.OperationalError as wrapped:
        return wrapped


@pytest.mark.parametrize(
    "wrap",
    [lambda e: e, wrapped_by_sqlalchemy, wrapped_by_eventsourcing],
    ids=["psycopg", "sqlalchemy", "eventsourcing"],
)
def test_a_full_server_is_recognised_however_the_driver_wraps_it(wrap: object) -> None:
    refusal = refusal_of(wrap(psycopg.OperationalError(FULL)))  # type: ignore[operator]
    assert refusal is not None
    assert refusal.transient
    assert refusal.detail == "sorry, too many clients already"
    assert "max_connections" in refusal.advice
    assert "\n" not in refusal.line()


def test_wrong_credentials_are_not_worth_waiting_for() -> None:
    refusal = refusal_of(wrapped_by_sqlalchemy(psycopg.OperationalError(WRONG_PASSWORD)))
    assert refusal is not None
    assert not refusal.transient
    assert "DATABASE_URL" in refusal.advice


def test_a_server_that_is_not_there_is_worth_waiting_for() -> None:
    refusal = refusal_of(psycopg.OperationalError(NO_SOCKET))
    assert refusal is not None
    assert refusal.transient
    assert refusal.detail == "No such file or directory"


def test_a_pool_timeout_says_no_connection_became_free() -> None:
    refusal = refusal_of(PoolTimeout("couldn't get a connection after 0.50 sec"))
    assert refusal is not None
    assert refusal.transient
    assert "FLOWLEDGER_DB_POOL_SIZE" in refusal.advice


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.UndefinedTable('relation "agents" does not exist'),
        ValueError("too many clients"),
        RuntimeError("boom"),
    ],
)
def test_other_failures_are_not_refusals(error: Exception) -> None:
    assert refusal_of(error) is None


def settings(retry_s: float) -> Settings:
    return Settings(extra={"FLOWLEDGER_DB_RETRY": str(retry_s)})


class Command:
    """A command that the database refuses ``refusals`` times, then lets through."""

    def __init__(self, refusals: int, message: str = FULL) -> None:
        self.refusals = refusals
        self.message = message
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.refusals:
            raise wrapped_by_sqlalchemy(psycopg.OperationalError(self.message))
        return 0


def test_a_refused_command_says_so_in_one_line_and_succeeds_when_the_database_lets_it() -> None:
    out = io.StringIO()
    command = Command(refusals=2)
    assert patiently(command, settings(retry_s=30), out=out) == 0
    assert command.calls == 3
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("flowledger: the database has no free connection")
    assert "too many clients" in lines[0]
    assert "trying again for up to 30s" in lines[0]


def test_a_command_gives_up_after_its_patience_with_the_cause_and_what_to_do() -> None:
    out = io.StringIO()
    command = Command(refusals=1_000)
    assert patiently(command, settings(retry_s=0.3), out=out) == EXIT_UNAVAILABLE
    assert command.calls >= 2
    first, last = out.getvalue().splitlines()
    assert "trying again" in first
    assert last.startswith("flowledger: gave up after 0.3s: the database has no free connection")
    assert "max_connections" in last
    assert "Traceback" not in out.getvalue()


def test_wrong_credentials_stop_the_command_at_once() -> None:
    out = io.StringIO()
    command = Command(refusals=1_000, message=WRONG_PASSWORD)
    assert patiently(command, settings(retry_s=30), out=out) == EXIT_REFUSED
    assert command.calls == 1
    assert out.getvalue().count("\n") == 1
    assert "refused our credentials" in out.getvalue()


def test_a_command_without_retries_only_explains() -> None:
    out = io.StringIO()
    command = Command(refusals=1_000)
    assert patiently(command, settings(retry_s=30), retry=False, out=out) == EXIT_UNAVAILABLE
    assert command.calls == 1


def test_any_other_failure_is_left_alone() -> None:
    def broken() -> int:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        patiently(broken, settings(retry_s=30), out=io.StringIO())
