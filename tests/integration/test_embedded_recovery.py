"""The embedded server after a crash (ADR 0003): a process killed with ``kill -9`` while using it
does not keep it running forever, a ``postmaster.pid`` naming some other live process does not
block a start, and a setting that takes a restart is applied when nobody else uses the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from flowledger.runtime import embedded
from flowledger.runtime.database import Database
from tests.support import REPO_ROOT
from tests.support.dev import dev_environment, flowledger, postgres_processes
from tests.support.pgserver import own_server
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

HOLD_SERVER = """
import signal, sys, time
from pathlib import Path
from flowledger.runtime.database import start_embedded_server
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit cleanly: the library's atexit runs
start_embedded_server(Path(sys.argv[1]), cleanup=sys.argv[2] if len(sys.argv) > 2 else "stop")
print("ready", flush=True)
time.sleep(600)
"""


def hold_server(pgdata: Path, *cleanup: str) -> subprocess.Popen[str]:
    """A process that starts (or joins) the server of ``pgdata`` and keeps using it."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_SERVER, str(pgdata), *cleanup],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def kill_9(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"
    for pid in postgres_processes(tmp_path / "data" / "pgdata"):  # whatever a failure left
        os.kill(pid, signal.SIGKILL)


def test_after_kill_9_of_its_user_the_next_process_takes_the_server_over_and_stops_it(
    data_dir: Path,
) -> None:
    pgdata = (data_dir / "pgdata").resolve()
    first = hold_server(pgdata)
    kill_9(first)
    assert postgres_processes(pgdata), "the server stops with the process that started it"
    assert first.pid in embedded._read_holders(pgdata)

    current = flowledger("migrate", "current", env=dev_environment(data_dir))

    assert current.returncode == 0, current.stderr
    assert "takes it over" in current.stderr
    eventually(
        lambda: postgres_processes(pgdata),
        lambda pids: not pids,
        what="the server to stop with its last user",
    )
    assert embedded._read_holders(pgdata) == []
    assert not (pgdata / "postmaster.pid").exists()


def test_a_server_lock_file_naming_another_live_process_does_not_block_a_start(
    data_dir: Path,
) -> None:
    pgdata = (data_dir / "pgdata").resolve()
    holder = hold_server(pgdata)
    lock = (pgdata / "postmaster.pid").read_text().splitlines()
    holder.send_signal(signal.SIGTERM)  # exits cleanly: the server stops
    holder.wait()
    eventually(lambda: postgres_processes(pgdata), lambda pids: not pids, what="a stopped server")
    # As after a crash and a reboot: the file remains, and its pid is some other process's.
    (pgdata / "postmaster.pid").write_text("\n".join([str(os.getpid()), *lock[1:]]) + "\n")

    current = flowledger("migrate", "current", env=dev_environment(data_dir))

    assert current.returncode == 0, current.stderr
    assert "named no running server" in current.stderr


def test_a_setting_that_takes_a_restart_is_applied_when_nobody_else_uses_the_server(
    tmp_path: Path,
) -> None:
    with own_server(tmp_path) as server:
        assert embedded.holders(server.pgdata) == [os.getpid()]
        assert embedded.configure(server.pgdata, {"max_connections": "42"}) == []
        assert show(server.location, "max_connections") == "42"

        other = hold_server(server.pgdata, "delete")  # a second user of the same server
        try:
            waiting = embedded.configure(server.pgdata, {"max_connections": "43"})
            assert waiting == ["max_connections"]
            assert show(server.location, "max_connections") == "42"
            assert postgres_processes(server.pgdata), "the server was stopped under its user"
        finally:
            kill_9(other)
        assert embedded.recover(server.pgdata).dead_holders == (other.pid,)
        assert embedded.configure(server.pgdata, {"max_connections": "43"}) == []
        assert show(server.location, "max_connections") == "43"


def show(database: Database, name: str) -> str:
    with psycopg.connect(database.libpq_url, autocommit=True) as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
    assert row is not None
    return str(row[0])
