"""``flowledger dev`` as an operator runs it, in a process group of its own: started and waited
for, its workers found, killed with ``kill -9`` (one worker, or the whole group), stopped
cleanly; and the operator's other ``flowledger`` commands beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from flowledger.runtime.database import Database
from tests.support import REPO_ROOT
from tests.support.polling import eventually
from tests.support.ports import free_port

STARTUP_TIMEOUT_S = 120.0
"""A loaded 2-core machine takes tens of seconds to import and start every worker."""


def dev_environment(
    data_dir: Path, database: Database | None = None, **settings: str
) -> dict[str, str]:
    """The environment of ``flowledger dev`` and of the commands run beside it: none of the
    caller's ``FLOWLEDGER_*`` variables; the embedded server in ``data_dir`` unless
    ``database`` is given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLOWLEDGER_") and k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    env.update(
        {
            "FLOWLEDGER_DATA_DIR": str(data_dir),
            "FLOWLEDGER_LOG_LEVEL": "WARNING",
            "FLOWLEDGER_FOLLOWER_IDLE_WAIT": "0.05",
            # A write's answer waits for its projection up to this long: a loaded machine (a
            # parallel test run) can take more than the default 5 s.
            "FLOWLEDGER_READ_WAIT_TIMEOUT": "30",
            **settings,
        }
    )
    if database is not None:
        env["DATABASE_URL"] = database.libpq_url
    return env


def flowledger(
    *args: str, env: Mapping[str, str], timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a ``flowledger`` command to its end."""
    return subprocess.run(
        [sys.executable, "-m", "flowledger", *args],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@dataclass
class DevServer:
    process: subprocess.Popen[bytes]
    base: str
    env: dict[str, str]
    output: Path

    @classmethod
    def start(cls, env: Mapping[str, str], output: Path, port: int | None = None) -> DevServer:
        """Start ``flowledger dev`` in a new session (its own process group) and wait until it
        answers ``/health``."""
        port = port or free_port()
        with output.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "flowledger", "dev", "--port", str(port)],
                cwd=REPO_ROOT,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = cls(process, f"http://127.0.0.1:{port}", dict(env), output)
        try:
            server.wait_healthy()
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def data_dir(self) -> Path:
        return Path(self.env["FLOWLEDGER_DATA_DIR"])

    def admin_key(self) -> str:
        return (self.data_dir / "admin-api-key").read_text().strip()

    def client(self, timeout_s: float = 30) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, timeout=timeout_s, headers={"X-API-Key": self.admin_key()}
        )

    def wait_healthy(self) -> None:
        def health() -> int:
            assert self.process.poll() is None, self.output.read_text(errors="replace")
            return httpx.get(f"{self.base}/health", timeout=1).status_code

        eventually(
            health,
            lambda status: status == 200,
            what="flowledger dev to answer /health",
            timeout_s=STARTUP_TIMEOUT_S,
            interval_s=0.2,
            ignoring=(httpx.TransportError,),
        )

    def worker_pids(self) -> dict[str, int]:
        """The running workers (``projections``: pid), found among dev's children."""
        found = {}
        for child in psutil.Process(self.process.pid).children():
            try:
                argv = child.cmdline()
            except psutil.Error:
                continue
            if "worker" in argv and child.status() != psutil.STATUS_ZOMBIE:
                found[argv[argv.index("worker") + 1]] = child.pid
        return found

    def kill_worker(self, kind: str) -> int:
        """``kill -9`` one worker once it runs; its pid."""
        pid = eventually(
            lambda: self.worker_pids().get(kind),
            lambda found: found is not None,
            what=f"the {kind} worker to run",
            timeout_s=STARTUP_TIMEOUT_S,
            interval_s=0.2,
        )
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_group(self) -> None:
        """``kill -9`` of the whole process group: dev and its workers at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 60) -> int | None:
        """Stop it cleanly (SIGTERM), as Ctrl-C or a service manager would."""
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return None


def postgres_processes(pgdata: Path) -> list[int]:
    """Pids of PostgreSQL server processes of this data folder (the postmaster)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and str(pgdata.resolve()) in cmdline:
            found.append(process.pid)
    return found
