"""An operator's command facing a database with no free connection (issue 21): one line with
the cause and what to do instead of a stack trace, a few more tries, and success as soon as a
connection is free, or exit code 75 once its patience (``FLOWLEDGER_DB_RETRY``) runs out."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from flowledger.cli.patience import EXIT_UNAVAILABLE
from flowledger.runtime import embedded
from flowledger.runtime.database import Database
from tests.support import REPO_ROOT
from tests.support.dev import dev_environment, flowledger
from tests.support.pgserver import own_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A migrated database on a server of its own that allows 8 connections."""
    with own_server(tmp_path_factory.mktemp("small")) as server:
        database = server.database()
        assert embedded.configure(server.pgdata, {"max_connections": "8"}) == []
        yield database


@pytest.fixture
def full(small_server: Database) -> Iterator[list[psycopg.Connection[tuple[object, ...]]]]:
    """Every connection the server allows, taken (close them to make room)."""
    taken = []
    while True:
        try:
            taken.append(psycopg.connect(small_server.libpq_url, autocommit=True))
        except psycopg.OperationalError as error:
            assert "too many clients" in str(error)
            break
    yield taken
    for conn in taken:
        conn.close()


def environment(database: Database, tmp_path: Path, retry_s: float) -> dict[str, str]:
    return dev_environment(tmp_path / "data", database, FLOWLEDGER_DB_RETRY=str(retry_s))


def said(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("flowledger:")]


def test_a_command_gives_up_after_its_patience_saying_why_and_what_to_do(
    small_server: Database, full: list[psycopg.Connection[tuple[object, ...]]], tmp_path: Path
) -> None:
    status = flowledger("projections", "status", env=environment(small_server, tmp_path, retry_s=2))

    assert status.returncode == EXIT_UNAVAILABLE
    assert "Traceback" not in status.stderr
    first, last = said(status.stderr)
    for line in (first, last):
        assert "the database has no free connection (sorry, too many clients already)" in line
        assert "max_connections" in line
    assert first.endswith("trying again for up to 2s")
    assert last.startswith("flowledger: gave up after 2s")


def test_a_command_succeeds_once_a_connection_is_free(
    small_server: Database, full: list[psycopg.Connection[tuple[object, ...]]], tmp_path: Path
) -> None:
    command = subprocess.Popen(
        [sys.executable, "-m", "flowledger", "projections", "status"],
        cwd=REPO_ROOT,
        env=environment(small_server, tmp_path, retry_s=120),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert command.stderr is not None
    try:
        line = command.stderr.readline()
        assert "too many clients" in line
        assert line.rstrip().endswith("trying again for up to 120s")
        for conn in full[:6]:  # room for the command's five
            conn.close()
        out, err = command.communicate(timeout=120)
    finally:
        command.kill()
        command.wait()
    assert command.returncode == 0, err
    assert "event store head" in out
    assert said(err) == []
